//! WeCom (企业微信): the callback crypto shared by every WeCom channel, the group robot, the
//! AI bot's long connection, and the self-built app's server API for customer groups.

pub mod aibot;
pub mod app;
pub mod crypto;
pub mod robot;
