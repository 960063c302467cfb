//! Campaigns: the dialer's pure [`planner`] (pacing, calling windows in each contact's timezone,
//! retries, eligibility). The CampaignActor that applies it is not built yet (issue 5).

pub mod planner;
