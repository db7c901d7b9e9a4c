//! Where session state and retained messages live: the `Store` trait and its implementations.
