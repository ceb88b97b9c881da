//! On-disk constants of DRBD v08 meta-data (magics, sizes, limits).
//!
//! Values are the ones DRBD 8.4 (`drbd_int.h`, `linux/drbd.h`, `drbd_limits.h`) and drbd-utils'
//! `drbdmeta` use; the names say what each one is, units last.

/// Base of all DRBD magics (`DRBD_MAGIC`).
pub const DRBD_MAGIC: u32 = 0x8374_0267;
/// Superblock magic of v07 meta-data (recognised only to name it in errors).
pub const MD_MAGIC_07: u32 = DRBD_MAGIC + 3;
/// Superblock magic of clean v08 meta-data.
pub const MD_MAGIC_08: u32 = DRBD_MAGIC + 4;
/// Superblock magic written by DRBD 8.4 while the device is attached ("unclean").
pub const MD_MAGIC_84_UNCLEAN: u32 = DRBD_MAGIC + 5;
/// Superblock magic of v09 meta-data (recognised only to name it in errors).
pub const MD_MAGIC_09: u32 = DRBD_MAGIC + 6;
/// Magic of an activity-log transaction block.
pub const AL_MAGIC: u32 = 0x69cb_65a2;

/// Size of a sector, the unit of all `*_sect` fields.
pub const SECTOR_BYTES: u64 = 512;
/// Size of every meta-data I/O block (superblock, AL transaction, bitmap page).
pub const BLOCK_4K_BYTES: usize = 4096;
/// Sectors in a 4 KiB block.
pub const BLOCK_4K_SECT: u64 = 8;
/// Storage bytes covered by one bitmap bit.
pub const BM_BYTES_PER_BIT: u32 = 4096;
/// Sectors covered by one bitmap bit.
pub const BM_SECT_PER_BIT: u64 = 8;
/// Data sectors covered by one 512-byte sector of bitmap (4096 bits × 8 sectors).
pub const BM_SECT_COVERED_PER_BM_SECT: u64 = 32768;
/// log2 of the size of an activity-log extent in bytes (4 MiB).
pub const AL_EXTENT_SHIFT: u32 = 22;
/// Sectors in an activity-log extent.
pub const AL_EXTENT_SECT: u64 = 1 << (AL_EXTENT_SHIFT - 9);
/// Bitmap bits per activity-log extent (4 MiB / 4 KiB).
pub const BM_BITS_PER_AL_EXTENT: u64 = 1024;
/// Bitmap bytes per activity-log extent.
pub const BM_BYTES_PER_AL_EXTENT: u64 = BM_BITS_PER_AL_EXTENT / 8;

/// Update slots in one AL transaction (`AL_UPDATES_PER_TRANSACTION`).
pub const AL_UPDATES_PER_TRANSACTION: usize = 64;
/// Context entries in one AL transaction (`AL_CONTEXT_PER_TRANSACTION`).
pub const AL_CONTEXT_PER_TRANSACTION: usize = 919;
/// Default number of hot AL extents (`al-extents`).
pub const AL_EXTENTS_DEFAULT: u16 = 1237;
/// Smallest allowed `al-extents`.
pub const AL_EXTENTS_MIN: u16 = 67;
/// Largest allowed `al-extents` (`DRBD_AL_EXTENTS_MAX`).
pub const AL_EXTENTS_MAX: u16 = 65534;
/// `al_nr_extents` that drbdmeta writes into a fresh superblock.
pub const AL_NR_EXTENTS_CREATE: u32 = 257;
/// Default AL stripes.
pub const AL_STRIPES_DEFAULT: u32 = 1;
/// Default AL stripe size in 4 KiB blocks (32 KiB).
pub const AL_STRIPE_SIZE_4K_DEFAULT: u32 = 8;
/// Smallest AL ring in 4 KiB blocks (32 KiB).
pub const AL_SIZE_4K_MIN: u64 = 8;
/// Largest AL ring in 4 KiB blocks that drbdmeta accepts (32 MiB buffer).
pub const AL_SIZE_4K_MAX: u64 = 8192;

/// Size of a slot of indexed external meta-data (128 MiB), in sectors.
pub const MD_128MB_SECT: u64 = 128 << 11;
/// Largest data size that indexed external meta-data can track (`DRBD_MAX_SECTORS_FIXED_BM`).
pub const MAX_SECTORS_FIXED_BM: u64 = (MD_128MB_SECT - 64 - 8) * BM_SECT_COVERED_PER_BM_SECT;
/// Largest data size of flexible meta-data (`DRBD_MAX_SECTORS_FLEX`, 1 PiB).
pub const MAX_SECTORS_FLEX: u64 = 1 << 51;
/// Largest bitmap of flexible meta-data in bytes (`MD_BM_MAX_BYTE_FLEX`, drbdmeta).
pub const BM_MAX_BYTES_FLEX: u64 = 1 << 35;

/// Current UUID that `create-md` writes (`UUID_JUST_CREATED`).
pub const UUID_JUST_CREATED: u64 = 4;
