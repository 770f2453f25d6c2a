//! Helpers shared by the fuzz targets in `fuzz_targets/`: a reference
//! event-stream parser written from the standard ([`sse_spec`]).

pub mod sse_spec;
