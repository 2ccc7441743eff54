//! Formatting shared by the sinks and the admin plane: JSON strings and numbers ([`json`]),
//! JavaScript number printing ([`number`]), time ([`time`]) and the protobuf wire format of
//! the binary messages ([`protobuf`]). Nothing here knows about sockets or threads; what a
//! sink writes around these pieces is the sink's own.

pub mod json;
pub mod number;
pub mod protobuf;
pub mod time;
