//! Webhook subscriptions: the pure delivery rules ([`fsm`]), the actor that drains one
//! subscription's outbox ([`actor`]) and their supervisor ([`supervisor`]).

pub mod actor;
pub mod fsm;
pub mod supervisor;

#[cfg(test)]
mod tests;
