//! Fuzzes the v08 superblock decoder: never panics; whatever decodes re-encodes to a block that
//! decodes to the same value; layout validation against a computed layout never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdbd_metadata::{Layout, LayoutKind, Superblock};

fuzz_target!(|data: &[u8]| {
    let Ok(sb) = Superblock::decode(data, 0) else {
        return;
    };
    let again = Superblock::decode(&sb.encode(), 0).expect("re-encoded superblock must decode");
    assert_eq!(again, sb);
    for kind in [
        LayoutKind::Internal,
        LayoutKind::FlexExternal,
        LayoutKind::Indexed(1),
    ] {
        let size = u64::from(sb.md_size_sect)
            .saturating_mul(512)
            .saturating_add(1 << 28);
        if let Ok(layout) = Layout::compute(kind, size, sb.al) {
            let _ = sb.validate_layout(&layout);
            let _ = layout.usable_data_sectors(size / 512);
        }
    }
});
