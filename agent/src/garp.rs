//! Gratuitous ARP, sent natively through an `AF_PACKET` raw socket, so neighbours that cached the previous
//! owner's MAC for a VIP switch to ours at once.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Length of an Ethernet + ARP frame (without padding; the kernel pads to the minimum).
pub const FRAME_LEN: usize = 42;
/// EtherType of ARP.
const ETH_P_ARP: u16 = 0x0806;

/// ARP operation of a gratuitous packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    /// Unsolicited request (sender IP = target IP): updates every neighbour cache that has the IP.
    Request,
    /// Unsolicited reply: the same announcement for stacks that only learn from replies.
    Reply,
}

/// Builds a broadcast gratuitous ARP frame announcing that `ip` is at `mac`.
pub fn build_frame(mac: [u8; 6], ip: Ipv4Addr, op: ArpOp) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // hardware type: Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol type: IPv4
    f[18] = 6;
    f[19] = 4;
    let oper: u16 = match op {
        ArpOp::Request => 1,
        ArpOp::Reply => 2,
    };
    f[20..22].copy_from_slice(&oper.to_be_bytes());
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip.octets());
    let target_mac = match op {
        ArpOp::Request => [0u8; 6],
        ArpOp::Reply => [0xff; 6],
    };
    f[32..38].copy_from_slice(&target_mac);
    f[38..42].copy_from_slice(&ip.octets());
    f
}

/// Sends one request and one reply announcing `ip` at `mac` out of interface `ifindex`.
pub fn send(ifindex: u32, mac: [u8; 6], ip: Ipv4Addr) -> std::io::Result<()> {
    let proto = ETH_P_ARP.to_be();
    // SAFETY: plain socket(2) call; the result is checked and owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(proto),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = proto;
    addr.sll_ifindex = ifindex as i32;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    for op in [ArpOp::Request, ArpOp::Reply] {
        let frame = build_frame(mac, ip, op);
        // SAFETY: buffer and address are valid for the given lengths during the call.
        let n = unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_frame_bytes() {
        let mac = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
        let f = build_frame(mac, Ipv4Addr::new(10, 213, 7, 100), ArpOp::Request);
        let expected: [u8; FRAME_LEN] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst: broadcast
            0x02, 0x11, 0x22, 0x33, 0x44, 0x55, // src
            0x08, 0x06, // ARP
            0x00, 0x01, 0x08, 0x00, 6, 4, // Ethernet/IPv4, lengths
            0x00, 0x01, // request
            0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 10, 213, 7, 100, // sender
            0, 0, 0, 0, 0, 0, 10, 213, 7, 100, // target: same IP
        ];
        assert_eq!(f, expected);
    }

    #[test]
    fn reply_frame_differs_in_op_and_target_mac() {
        let mac = [2, 0, 0, 0, 0, 1];
        let f = build_frame(mac, Ipv4Addr::new(192, 168, 0, 50), ArpOp::Reply);
        assert_eq!(&f[20..22], &[0, 2]);
        assert_eq!(&f[32..38], &[0xff; 6]);
        assert_eq!(&f[28..32], &[192, 168, 0, 50]);
        assert_eq!(&f[38..42], &[192, 168, 0, 50]);
    }
}
