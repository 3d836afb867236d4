//! `fw up --config` / `fw apply` input: any text either parses into a valid
//! config or is refused with an error, never a panic; a config that parses
//! comes back unchanged through `to_toml` (what `fw apply --confirm` saves
//! to roll back to).
#![no_main]

use std::path::Path;

use fw_policy::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let origin = Path::new("fuzz.toml");
    if let Ok(cfg) = Config::from_toml(&text, origin) {
        let saved = cfg.to_toml();
        match Config::from_toml(&saved, origin) {
            Ok(back) => assert_eq!(back, cfg, "round trip changed the config:\n{saved}"),
            Err(e) => panic!("to_toml wrote what from_toml refuses: {e}\n{saved}"),
        }
    }
});
