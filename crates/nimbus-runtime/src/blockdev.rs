//! EBS volumes as block devices: a volume's sparse file is bound to a free
//! loop device (autoclear: the kernel releases it when nothing holds it any
//! more), and the instance gets a device node with that loop's numbers at the
//! requested name (`/dev/sdf`, plus the `/dev/xvdf` alias Xen guests use).
//! The two ioctls are written out here: the loop-device crates build with
//! bindgen (libclang) for what is two calls and one struct.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
pub const LOOP_MAJOR: u64 = 7;

/// `struct loop_info64` of <linux/loop.h>.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// A volume bound to a loop device; dropping it lets the kernel release the
/// device once no mount inside the instance uses it either.
pub struct Attached {
    pub minor: u64,
    _device: File,
}

/// Binds `file` to a free loop device.
pub fn attach(file: &Path) -> io::Result<Attached> {
    let backing = OpenOptions::new().read(true).write(true).open(file)?;
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")?;
    // Another process may take the free device between asking and binding: retry.
    for _ in 0..16 {
        // SAFETY: ioctl on the loop control device; it takes no argument.
        let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let path = format!("/dev/loop{n}");
        let device = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // devtmpfs has not made the node yet; make it.
                let c = std::ffi::CString::new(path.clone()).map_err(io::Error::other)?;
                // SAFETY: mknod with a valid C path.
                unsafe {
                    libc::mknod(
                        c.as_ptr(),
                        libc::S_IFBLK | 0o660,
                        libc::makedev(LOOP_MAJOR as u32, n as u32),
                    )
                };
                OpenOptions::new().read(true).write(true).open(&path)?
            }
            Err(e) => return Err(e),
        };
        // SAFETY: both descriptors are open and owned here.
        if unsafe { libc::ioctl(device.as_raw_fd(), LOOP_SET_FD as _, backing.as_raw_fd()) } < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EBUSY) {
                continue;
            }
            return Err(e);
        }
        // SAFETY: an all-zero loop_info64 is valid; only the flags are set.
        let mut info: LoopInfo64 = unsafe { std::mem::zeroed() };
        info.lo_flags = LO_FLAGS_AUTOCLEAR;
        let name = file.as_os_str().as_encoded_bytes();
        let len = name.len().min(63);
        info.lo_file_name[..len].copy_from_slice(&name[..len]);
        // SAFETY: the struct matches the kernel's layout and outlives the call.
        if unsafe { libc::ioctl(device.as_raw_fd(), LOOP_SET_STATUS64 as _, &info) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let minor = libc::minor(device.metadata()?.rdev()) as u64;
        return Ok(Attached {
            minor,
            _device: device,
        });
    }
    Err(io::Error::other("no free loop device"))
}

/// The names a device appears under inside the instance: the requested one and
/// its Xen alias (`/dev/sdf` and `/dev/xvdf`).
pub fn names(device: &str) -> Vec<String> {
    let base = device.trim_start_matches("/dev/");
    let mut out = vec![base.to_string()];
    if let Some(rest) = base.strip_prefix("sd") {
        out.push(format!("xvd{rest}"));
    } else if let Some(rest) = base.strip_prefix("xvd") {
        out.push(format!("sd{rest}"));
    }
    out
}

/// Makes the device nodes for a loop minor under `dev` (the instance's /dev).
pub fn make_nodes(dev: &Path, device: &str, minor: u64) -> io::Result<()> {
    for name in names(device) {
        let path = dev.join(&name);
        let _ = std::fs::remove_file(&path);
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(io::Error::other)?;
        // SAFETY: mknod with a valid C path, a block-device mode and the loop's numbers.
        if unsafe {
            libc::mknod(
                c.as_ptr(),
                libc::S_IFBLK | 0o660,
                libc::makedev(LOOP_MAJOR as u32, minor as u32),
            )
        } != 0
        {
            return Err(io::Error::last_os_error());
        }
        // mknod's mode is masked by nimbus's umask (077); a disk node is 0660.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
    }
    Ok(())
}

/// Removes a device's nodes from the instance's /dev.
pub fn remove_nodes(dev: &Path, device: &str) {
    for name in names(device) {
        let _ = std::fs::remove_file(dev.join(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases() {
        assert_eq!(names("/dev/sdf"), vec!["sdf", "xvdf"]);
        assert_eq!(names("/dev/xvdg"), vec!["xvdg", "sdg"]);
        assert_eq!(names("/dev/nvme1n1"), vec!["nvme1n1"]);
    }
}
