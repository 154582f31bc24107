//! One module per subcommand.

pub mod demo;
pub mod diff;
pub mod dump;
pub mod image;
pub mod inspect;
pub mod key;
pub mod restore;
pub mod seal;
pub mod verify;
