//! WeCom (企业微信): the callback crypto shared by every WeCom channel, the group robot, and the
//! AI bot's long connection.

pub mod aibot;
pub mod crypto;
pub mod robot;
