//! WeCom (企业微信): the callback crypto shared by every WeCom channel, and the group robot.

pub mod crypto;
pub mod robot;
