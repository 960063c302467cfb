//! Dialplane's one integration-test binary: the whole server on `127.0.0.1:0` with real HTTP to the
//! sandbox carrier and to a webhook receiver, on SQLite, or on PostgreSQL and Redis when
//! `TEST_DATABASE_URL` and `TEST_REDIS_URL` are set (CI sets both).

mod agents;
mod api_errors;
mod bulk;
mod callbacks;
mod campaign_store;
mod campaigns;
mod carrier_mocks;
mod carriers;
mod cli;
mod contacts;
mod crash;
mod durability;
mod ops;
mod rate_limits;
mod recent;
mod refresh_tokens;
mod seed_flow;
mod support;
mod webhooks;
