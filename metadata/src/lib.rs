//! DRBD v08 meta-data: superblock, layouts, activity log and dirty bitmap.
