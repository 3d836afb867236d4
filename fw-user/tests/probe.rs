use aya::programs::{TestRun, TestRunOptions, Xdp};
use fw_user::{config::Config, loader, pins::PinDir};

#[test]
fn probe() {
    let pins = PinDir::new(format!("/sys/fs/bpf/fwprobe-{}", std::process::id()));
    let ebpf = loader::load_and_pin(&pins, &Config::default()).unwrap();
    let xdp: &Xdp = ebpf.program("fw_ingress").unwrap().try_into().unwrap();
    let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
        .ipv4([192, 0, 2, 2], [192, 0, 2, 1], 64)
        .tcp(40000, 8080, 1, 1000)
        .syn();
    let mut frame = Vec::new();
    b.write(&mut frame, &[]).unwrap();
    let mut out = vec![0u8; 2048];
    let r = xdp
        .test_run(TestRunOptions { data_in: Some(&frame), data_out: Some(&mut out), ..Default::default() })
        .unwrap();
    println!("ret {} size {}", r.return_value, r.data_size_out);
    let o = &out[..r.data_size_out as usize];
    println!("{:02x?}", o);
    println!("{:?}", etherparse::SlicedPacket::from_ethernet(o));
    pins.remove_all().unwrap();
}
