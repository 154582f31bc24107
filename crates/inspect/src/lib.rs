//! Inspection of stasis checkpoint images: what a dump saved, whether it
//! is intact, and how two images differ.
//!
//! [`load`] reads an image and checks every file on its own, so a damaged
//! image still shows whatever is intact. The [`view`] module turns a
//! [`LoadedImage`] into text or JSON views, [`diff`] compares two images,
//! and [`html`] and [`dot`] draw reports. This crate only reads files.

pub mod diff;
pub mod dot;
mod error;
pub mod html;
mod load;
pub mod memory;
pub mod names;
pub mod pages;
pub mod strings;
mod svg;
pub mod text;
pub mod view;

pub use error::InspectError;
pub use load::{
    decode_ignoring_checksum, load, load_with_key, pretty_record_json, Checked, EncryptionState,
    FileReport, LoadedImage, Problem, ProcessRecords, RestoreCheck,
};
pub use view::{Options, View};
