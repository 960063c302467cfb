//! Contacts of campaigns: phone numbers normalised to E.164 with the timezone they ring in
//! ([`phone`]), the streaming CSV import with its per-row report ([`csv_import`]), and storage of
//! contacts and do-not-call lists ([`store`]).

pub mod csv_import;
pub mod phone;
pub mod store;
