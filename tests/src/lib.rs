//! rdbd integration tests live in tests/*.rs.
