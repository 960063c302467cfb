//! Carrier adapters behind the actors' `Carrier` port: the built-in sandbox (a fake carrier that
//! still talks HTTP both ways, the default), Twilio, Exotel and LiveKit SIP, each configured as a
//! workspace's carrier account; the router that sends each call to its account's adapter at the
//! account's pace; and the LiveKit room count.

pub mod accounts;
pub mod client;
pub mod exotel;
pub mod livekit;
pub mod pacer;
pub mod rooms;
pub mod router;
pub mod sandbox;
pub mod sandbox_network;
pub mod twilio;
