//! One module per subcommand.

pub mod demo;
pub mod dump;
pub mod restore;
