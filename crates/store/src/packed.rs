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

/// A thread's compressor and decompressor for one dictionary, each made (the dictionary
/// loaded) on first use: a page of events or answers then loads it once, not once a
/// value.
pub(crate) struct Coders {
    compressor: Option<zstd::bulk::Compressor<'static>>,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
}

impl Coders {
    pub(crate) const fn new() -> Coders {
        Coders {
            compressor: None,
            decompressor: None,
        }
    }
}

/// The dictionary of one kind of stored JSON: typical values, which zstd takes as raw
/// content to refer back into.
pub(crate) struct Dictionary {
    /// What the values are, for errors: "an answer".
    what: &'static str,
    content: &'static str,
    /// Each thread's coders for it.
    coders: &'static LocalKey<RefCell<Coders>>,
}

impl Dictionary {
    pub(crate) const fn new(
        what: &'static str,
        content: &'static str,
        coders: &'static LocalKey<RefCell<Coders>>,
    ) -> Dictionary {
        Dictionary {
            what,
            content,
            coders,
        }
    }

    /// `json` as format 2 stores it.
    pub(crate) fn compress(&self, json: &str) -> Result<Vec<u8>, StoreError> {
        self.coders.with_borrow_mut(|coders| {
            let compressor = match &mut coders.compressor {
                Some(compressor) => compressor,
                slot @ None => slot.insert(
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
        let json = self.coders.with_borrow_mut(|coders| {
            let decompressor = match &mut coders.decompressor {
                Some(decompressor) => decompressor,
                slot @ None => slot.insert(
                    zstd::bulk::Decompressor::with_dictionary(self.content.as_bytes())
                        .map_err(corrupt)?,
                ),
            };
            decompressor.decompress(frame, size).map_err(corrupt)
        })?;
        String::from_utf8(json).map_err(corrupt)
    }
}
