//! `fw allow/deny <PORT|LO-HI>...` and the config's "LO-HI" strings: any
//! text parses or is refused, never a panic; what parses prints back as
//! text that parses to the same range.
#![no_main]

use fw_policy::policy::PortRange;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(r) = text.parse::<PortRange>() {
        assert!(r.lo >= 1 && r.lo <= r.hi, "{text:?} gave {r:?}");
        let shown = r.to_string();
        let back: PortRange = shown
            .parse()
            .unwrap_or_else(|e| panic!("{r:?} printed as {shown:?}, refused: {e}"));
        assert_eq!(back, r, "{shown:?}");
    }
});
