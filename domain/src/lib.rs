//! The business rules of wablast: aggregates (session, wallet and plans,
//! campaign, message, active hours), their commands and events, and the
//! value types they are built from. No I/O: everything outside comes in the
//! command.
//!
//! Empty until the domain issue (#3) lands; the event log and its tests use
//! an aggregate of their own meanwhile.
