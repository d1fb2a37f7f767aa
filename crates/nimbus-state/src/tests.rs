use super::*;
use nimbus_core::FileHold;
use std::os::unix::fs::MetadataExt as _;

/// A data directory with a store of `n` records and a few kinds of files.
fn source(n: u32) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("state.redb")).expect("store");
    let mut batch = Batch::new();
    for i in 0..n {
        batch.put("objects", format!("key-{i:05}"), vec![i as u8; 100]);
    }
    batch.put("queues", b"q".to_vec(), b"{\"visible\":3}".to_vec());
    store.commit_blocking(batch).expect("commit");
    let objects = dir.path().join("s3/objects/ab");
    fs::create_dir_all(&objects).expect("mkdir");
    fs::write(objects.join("abcdef"), b"body of an object").expect("write");
    let volumes = dir.path().join("ec2/volumes");
    fs::create_dir_all(&volumes).expect("mkdir");
    // A 64 MiB volume holding 4 KiB at 1 MiB: sparse on both sides.
    let vol = fs::File::create(volumes.join("vol-1.img")).expect("create");
    vol.set_len(64 << 20).expect("len");
    use std::os::unix::fs::FileExt as _;
    vol.write_all_at(&[7u8; 4096], 1 << 20).expect("write");
    (dir, store)
}

fn hold(dir: &Path) -> Vec<FileHold> {
    vec![FileHold {
        live: vec![dir.join("ec2/volumes")],
        settled: vec![dir.join("s3/objects")],
        ..FileHold::default()
    }]
}

fn saved(n: u32) -> (Vec<u8>, Summary) {
    let (dir, store) = source(n);
    let mut out = Vec::new();
    let summary = save(&mut out, dir.path(), &store, hold(dir.path()), "test").expect("save");
    (out, summary)
}

#[test]
fn round_trip_keeps_records_files_and_holes() {
    let (archive, summary) = saved(20_000);
    assert_eq!(summary.records, 20_001);
    assert_eq!(summary.files, 2);
    let target = tempfile::tempdir().expect("tempdir");
    let staging = target.path().join("staging");
    let loaded = load(archive.as_slice(), &staging).expect("load");
    assert_eq!(loaded.summary.records, 20_001);
    assert_eq!(loaded.written_by, "test");
    install(&staging, target.path()).expect("install");
    let store = Store::open(&target.path().join("state.redb")).expect("open loaded");
    assert_eq!(
        store.get("objects", b"key-19999").expect("get"),
        Some(vec![(19_999u32 % 256) as u8; 100])
    );
    assert_eq!(store.keys("objects").expect("keys").len(), 20_000);
    assert_eq!(
        fs::read(target.path().join("s3/objects/ab/abcdef")).expect("body"),
        b"body of an object"
    );
    let vol = target.path().join("ec2/volumes/vol-1.img");
    let meta = fs::metadata(&vol).expect("volume");
    assert_eq!(meta.len(), 64 << 20);
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "the volume stayed sparse: {} blocks",
        meta.blocks()
    );
    let data = fs::read(&vol).expect("read");
    assert_eq!(&data[(1 << 20)..(1 << 20) + 4096], &[7u8; 4096][..]);
    assert!(data[..1 << 20].iter().all(|b| *b == 0));
    assert!(
        archive.len() < 4 << 20,
        "the archive holds no holes: {} bytes",
        archive.len()
    );
}

#[test]
fn truncated_archives_are_refused_and_leave_nothing() {
    let (archive, _) = saved(2_000);
    let target = tempfile::tempdir().expect("tempdir");
    let staging = target.path().join("staging");
    for cut in [
        100,
        archive.len() / 2,
        archive.len() - 2048,
        archive.len() - 1100,
    ] {
        let err = load(&archive[..cut], &staging).expect_err("truncated");
        assert!(
            err.contains("corrupt or truncated") || err.contains("empty"),
            "{cut}: {err}"
        );
        assert!(!staging.exists(), "staging removed after a refused load");
    }
}

#[test]
fn a_flipped_byte_anywhere_is_refused() {
    let (archive, _) = saved(2_000);
    let target = tempfile::tempdir().expect("tempdir");
    let staging = target.path().join("staging");
    // Bytes in headers, in store records and in file contents.
    for at in [
        700,
        2_000,
        archive.len() / 3,
        archive.len() / 2,
        archive.len() - 3000,
    ] {
        let mut bad = archive.clone();
        bad[at] ^= 0x5a;
        assert!(
            load(bad.as_slice(), &staging).is_err(),
            "flipped byte at {at} went unnoticed"
        );
        assert!(!staging.exists());
    }
}

#[test]
fn a_newer_format_is_refused_with_a_clear_message() {
    let mut builder = tar::Builder::new(Vec::new());
    let manifest = json!({"format": FORMAT + 1, "nimbus": "9.9.9"}).to_string();
    append_bytes(&mut builder, MANIFEST, manifest.as_bytes()).expect("append");
    let archive = builder.into_inner().expect("finish");
    let target = tempfile::tempdir().expect("tempdir");
    let err = load(archive.as_slice(), &target.path().join("s")).expect_err("newer");
    assert!(
        err.contains(&format!("format {}", FORMAT + 1)) && err.contains("9.9.9"),
        "{err}"
    );
    assert!(err.contains("newer nimbus"), "{err}");
}

#[test]
fn other_tar_files_are_not_state() {
    let mut builder = tar::Builder::new(Vec::new());
    append_bytes(&mut builder, "etc/passwd", b"root:x:0:0").expect("append");
    let archive = builder.into_inner().expect("finish");
    let target = tempfile::tempdir().expect("tempdir");
    let err = load(archive.as_slice(), &target.path().join("s")).expect_err("not state");
    assert!(err.contains("not a nimbus state archive"), "{err}");
}

#[test]
fn escaping_paths_are_refused() {
    let mut builder = tar::Builder::new(Vec::new());
    append_bytes(
        &mut builder,
        MANIFEST,
        json!({"format": 1}).to_string().as_bytes(),
    )
    .expect("m");
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    header.set_mode(0o600);
    header.set_entry_type(tar::EntryType::Regular);
    // Written raw: the tar crate refuses to *write* `..`, an attacker's tool does not.
    let name = b"files/../../escaped";
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_cksum();
    builder.append(&header, &b"bad"[..]).expect("append");
    let archive = builder.into_inner().expect("finish");
    let target = tempfile::tempdir().expect("tempdir");
    let err = load(archive.as_slice(), &target.path().join("a/s")).expect_err("escape");
    assert!(
        err.contains("unsafe path") || err.contains("cannot create"),
        "{err}"
    );
    assert!(!target.path().join("escaped").exists());
}

#[test]
fn overlay_whiteouts_and_opaque_directories_survive() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return; // device nodes and trusted.* attributes need root
    }
    let (dir, store) = source(1);
    let upper = dir.path().join("ec2/instances/i-1/upper");
    fs::create_dir_all(upper.join("etc/replaced")).expect("mkdir");
    let c = |p: &Path| std::ffi::CString::new(p.to_str().expect("utf8")).expect("cstring");
    let whiteout = c(&upper.join("etc/gone"));
    // SAFETY: valid NUL-terminated path; a 0:0 character device is overlayfs's whiteout.
    assert_eq!(
        unsafe { libc::mknod(whiteout.as_ptr(), libc::S_IFCHR, 0) },
        0
    );
    let opaque = c(&upper.join("etc/replaced"));
    let name = std::ffi::CString::new(OPAQUE).expect("name");
    // SAFETY: valid NUL-terminated strings and a 1-byte value.
    assert_eq!(
        unsafe { libc::lsetxattr(opaque.as_ptr(), name.as_ptr(), b"y".as_ptr().cast(), 1, 0) },
        0
    );
    let holds = vec![FileHold {
        live: vec![upper.clone()],
        ..FileHold::default()
    }];
    let mut archive = Vec::new();
    save(&mut archive, dir.path(), &store, holds, "test").expect("save");
    let target = tempfile::tempdir().expect("tempdir");
    let staging = target.path().join("staging");
    load(archive.as_slice(), &staging).expect("load");
    install(&staging, target.path()).expect("install");
    let restored = target.path().join("ec2/instances/i-1/upper");
    use std::os::unix::fs::FileTypeExt as _;
    let gone = fs::symlink_metadata(restored.join("etc/gone")).expect("whiteout");
    assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
    assert_eq!(
        xattr(&restored.join("etc/replaced"), OPAQUE),
        Some(b"y".to_vec())
    );
}
