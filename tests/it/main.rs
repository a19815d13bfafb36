//! Integration tests: the real service over HTTP, with a fake WeCom beside it.

mod helpers;

mod admin;
mod adoption;
mod aibot;
mod architecture;
mod broadcast;
mod callbacks;
mod cli;
mod commands;
mod console;
mod crash;
mod customer_groups;
mod health;
mod hostile;
mod keywords;
mod moderation;
mod onebot;
mod pushes;
mod red_envelopes;
mod reload;
mod welcome;
