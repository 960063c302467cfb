//! AI voice agents (seed 001): the pure prompt tooling ([`prompt`]: metadata validation, rendering,
//! local enhancement), enhancement by an LLM ([`llm`]), and storage of agents and their config
//! versions ([`store`]).

pub mod llm;
pub mod prompt;
pub mod store;
