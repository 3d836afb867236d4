//! `fw allow ... --from CIDR` and the config's `from` lists: any text parses
//! or is refused, never a panic; what parses has no host bits and prints
//! back as text that parses to the same prefix.
#![no_main]

use fw_policy::policy::parse_prefix;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(net) = parse_prefix(&text) {
        assert_eq!(net.trunc(), net, "{text:?}: host bits kept");
        let shown = net.to_string();
        let back = parse_prefix(&shown)
            .unwrap_or_else(|e| panic!("{net:?} printed as {shown:?}, refused: {e}"));
        assert_eq!(back, net, "{shown:?}");
    }
});
