//! Folds of the event log into PostgreSQL query tables, each committing its
//! rows and its checkpoint (`projection_checkpoint`) in one transaction.
//!
//! Empty until the read-side issue (#4) lands.
