//! Shared pieces of the benchmark binaries: percentiles and markdown tables ([`stats`]), the machine
//! description printed with every result ([`machine`]), CPU and memory of a process from `/proc`
//! ([`procstat`]) and a stand-in MySQL server for the scale benchmark ([`standin`]).

pub mod machine;
pub mod procstat;
pub mod standin;
pub mod stats;
