//! Campaigns: the dialer's pure [`planner`] (pacing, calling windows in each contact's timezone,
//! retries, eligibility), the [`actor`] that applies it to one campaign, and its [`supervisor`].

pub mod actor;
pub mod planner;
pub mod supervisor;
