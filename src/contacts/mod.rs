//! Contacts of campaigns: phone numbers normalised to E.164 with the timezone they ring in
//! ([`phone`]), and the streaming CSV import with its per-row report ([`csv_import`]). The
//! `/v1/contacts` and `/v1/dnc` APIs that use them are not built yet (issue 5).

pub mod csv_import;
pub mod phone;
