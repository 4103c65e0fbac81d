//! What the emulator says about its own run, opt-in from `/chosen`: whether the loader's
//! segments stayed intact, and the timeline of its phases and memory.

pub mod integrity;
pub mod timeline;
