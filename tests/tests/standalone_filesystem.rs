//! ext4 end to end on a standalone export: nbdfuse + loop + mkfs + mount, files
//! written, unmounted, checked with fsck, remounted and read back.

use rdbd_tests::fixture::Standalone;
use rdbd_tests::fuse::NbdLoop;
use rdbd_tests::tools::require;

#[test]
fn ext4_survives_umount_fsck_and_remount() {
    for tool in [
        "nbdfuse",
        "losetup",
        "mkfs.ext4",
        "fsck.ext4",
        "fusermount3",
    ] {
        require(tool);
    }
    let s = Standalone::up(128);
    let mnt = s.dir.path().join("mnt");
    let mut files = Vec::new();
    {
        let mut dev = NbdLoop::attach(s.dir.path(), &s.uri());
        dev.mkfs_ext4();
        dev.mount(&mnt);
        for i in 0..50u32 {
            let content: Vec<u8> = (0..(4096 + i * 1000))
                .map(|j| (j.wrapping_mul(31) ^ i) as u8)
                .collect();
            std::fs::write(mnt.join(format!("file-{i}")), &content).expect("write file");
            files.push(content);
        }
        dev.umount();
        let (clean, report) = dev.fsck_clean();
        assert!(clean, "fsck -n after umount:\n{report}");
        dev.mount(&mnt);
        for (i, content) in files.iter().enumerate() {
            assert_eq!(
                &std::fs::read(mnt.join(format!("file-{i}"))).expect("read back"),
                content,
                "file-{i}"
            );
        }
    }
    // Through a fresh daemon too: down, up, primary, mount again.
    s.node.adm_ok(&["secondary", "r0"]);
    s.node.adm_ok(&["down", "r0"]);
    s.node.adm_ok(&["up", "r0"]);
    s.node.adm_ok(&["primary", "r0"]);
    let mut dev = NbdLoop::attach(s.dir.path(), &s.uri());
    dev.mount(&mnt);
    for (i, content) in files.iter().enumerate() {
        assert_eq!(
            &std::fs::read(mnt.join(format!("file-{i}"))).expect("read back"),
            content,
            "file-{i} after down/up"
        );
    }
}
