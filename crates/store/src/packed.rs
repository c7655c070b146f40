//! JSON the service gave out, stored compressed: the answers a repeated
//! `Idempotency-Key` is answered with again ([`answers`](crate::answers)) and the data of
//! events ([`events`](crate::events)). Both are a few hundred bytes of a few shapes that
//! repeat their field names and many values, which a dictionary of those shapes takes
//! out.
//!
//! The stored form (format 2): one byte [`MARK`] (2, [`BINARY`]), then a zstd frame
//! compressed against the [`Dictionary`] of what it holds. Format 1 is the JSON text
//! itself, and a stored format 2 value cannot be mistaken for it: JSON text never begins
//! with the byte 2. A dictionary is part of format 2: a value cannot be read without the
//! very dictionary it was written against, so a dictionary never changes; a better one
//! would be a new format.

use std::cell::RefCell;
use std::thread::LocalKey;

use crate::StoreError;
use crate::columns::{BINARY, corrupt};

/// The first byte of a format-2 value: the format's number.
const MARK: u8 = 2;
const _: () = assert!(MARK as i64 == BINARY);

/// zstd's level: values are a few hundred bytes, where higher levels find no more.
const LEVEL: i32 = 3;

/// The most a stored value may decompress to: far above any answer (a page of the API
/// is at most a few hundred kilobytes) or event, so a damaged frame cannot make a read
/// allocate without bound.
const LIMIT: usize = 16 << 20;

/// A thread's compressor for one dictionary, the dictionary loaded once.
pub(crate) type Compressor = RefCell<Option<zstd::bulk::Compressor<'static>>>;

/// The dictionary of one kind of stored JSON: typical values, which zstd takes as raw
/// content to refer back into.
pub(crate) struct Dictionary {
    /// What the values are, for errors: "an answer".
    what: &'static str,
    content: &'static str,
    /// Each thread's compressor for it.
    compressor: &'static LocalKey<Compressor>,
}

impl Dictionary {
    pub(crate) const fn new(
        what: &'static str,
        content: &'static str,
        compressor: &'static LocalKey<Compressor>,
    ) -> Dictionary {
        Dictionary {
            what,
            content,
            compressor,
        }
    }

    /// `json` as format 2 stores it.
    pub(crate) fn compress(&self, json: &str) -> Result<Vec<u8>, StoreError> {
        self.compressor.with_borrow_mut(|slot| {
            let compressor = match slot {
                Some(compressor) => compressor,
                None => slot.insert(
                    zstd::bulk::Compressor::with_dictionary(LEVEL, self.content.as_bytes())
                        .map_err(corrupt)?,
                ),
            };
            // The mark, then the frame written straight after it.
            let mut stored = vec![0; zstd::zstd_safe::compress_bound(json.len()).saturating_add(1)];
            stored[0] = MARK;
            let written = compressor
                .compress_to_buffer(json.as_bytes(), &mut stored[1..])
                .map_err(corrupt)?;
            stored.truncate(written.saturating_add(1));
            Ok(stored)
        })
    }

    /// The JSON of a stored value, of either format.
    pub(crate) fn text(&self, stored: &[u8]) -> Result<String, StoreError> {
        let Some((&MARK, frame)) = stored.split_first() else {
            return String::from_utf8(stored.to_vec()).map_err(corrupt);
        };
        let what = self.what;
        let size = zstd::zstd_safe::get_frame_content_size(frame)
            .map_err(|_| corrupt(format!("{what} is not a zstd frame")))?
            .ok_or_else(|| corrupt(format!("{what}'s frame does not say its size")))?;
        let size = usize::try_from(size)
            .ok()
            .filter(|&size| size <= LIMIT)
            .ok_or_else(|| corrupt(format!("{what} of {size} bytes")))?;
        let json = zstd::bulk::Decompressor::with_dictionary(self.content.as_bytes())
            .and_then(|mut decompressor| decompressor.decompress(frame, size))
            .map_err(corrupt)?;
        String::from_utf8(json).map_err(corrupt)
    }
}
