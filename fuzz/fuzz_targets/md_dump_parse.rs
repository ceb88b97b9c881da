#![no_main]
//! Fuzzes the `dump-md` text parser (the input of `restore-md`) on arbitrary UTF-8: never panics,
//! keeps at most the bitmap word limit it is given however large the repeat counts are, and a
//! dump it accepts (bitmap not cut) writes back as text that parses to the same document.
use libfuzzer_sys::fuzz_target;
use rdbd_metadata::dump::{parse_dump, write_dump, DumpPreamble};

/// The bitmap bound passed to the parser (words), as `restore-md` passes the device's size.
const LIMIT_WORDS: u64 = 4096;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(doc) = parse_dump(text, |_| LIMIT_WORDS) else {
        return;
    };
    assert!(
        doc.bitmap_words.len() as u64 <= LIMIT_WORDS,
        "bitmap limit ignored"
    );
    assert!(doc.bitmap_words_total >= doc.bitmap_words.len() as u64);
    if doc.bitmap_words_total != doc.bitmap_words.len() as u64 {
        return;
    }
    let preamble = DumpPreamble {
        banner: "# fuzz\n".into(),
        unclean: false,
        md_size_sect: 8,
        md_offset_bytes: 0,
        al_offset_bytes: 0,
        bm_offset_bytes: 0,
        al_nr_extents: 0,
    };
    let mut out = Vec::new();
    write_dump(&mut out, &preamble, &doc).expect("writing to a Vec cannot fail");
    let written = String::from_utf8(out).expect("dumps are ASCII");
    let again = parse_dump(&written, |_| LIMIT_WORDS)
        .unwrap_or_else(|e| panic!("written dump does not parse: {e}\n{written}"));
    assert_eq!(again, doc, "dump → parse changed the document");
});
