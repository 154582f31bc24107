//! Errors that stop an inspection. Damage to files other than the manifest
//! is not an error: it is reported in [`LoadedImage`](crate::LoadedImage)
//! and inspection goes on with what is intact.

use std::io;
use std::path::PathBuf;

use stasis_image::ImageError;

#[derive(thiserror::Error, Debug)]
pub enum InspectError {
    #[error("image directory {0} not found")]
    NotFound(PathBuf),

    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),

    #[error(
        "{0} has no manifest, so it is not a complete image: the dump that wrote it \
         failed or has not finished, or it is not an image directory"
    )]
    MissingManifest(PathBuf),

    #[error("the manifest {path} is unreadable, so nothing in the image can be located")]
    BadManifest {
        path: PathBuf,
        #[source]
        source: ImageError,
    },

    #[error(transparent)]
    Key(ImageError),

    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl InspectError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> InspectError {
        InspectError::Io {
            path: path.into(),
            source,
        }
    }
}
