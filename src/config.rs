//! Configuration: raw settings from TOML, environment and flags, validated
//! into a [`Config`] the rest of the program can trust.
