//! Carrier adapters behind the actors' `Carrier` port. Only the sandbox carrier exists so far: a
//! built-in fake carrier that still talks HTTP both ways, so development and tests run the same
//! path as production. Real carriers (Twilio, Exotel, …) are issue 7.

pub mod sandbox;
pub mod sandbox_network;
