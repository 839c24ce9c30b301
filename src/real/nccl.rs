//! NCCL between local GPUs: communicators per GPU set, created on first use and cached (their
//! creation time measured), and the exchanges of a Ulysses all-to-all as grouped send/receive
//! pairs (NCCL has no all-to-all; [`Packed`] says what goes where).
//!
//! Reached only on machines with two or more devices: `tetriserve gpu-check` runs
//! [`self_test`] there. NCCL is loaded at run time like the other CUDA libraries, so a missing
//! libnccl is an error, not a panic. The raw API is used rather than cudarc's safe wrappers,
//! whose destructors panic on NCCL errors.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::time::{Duration, Instant};

use cudarc::nccl::{result, sys};

use crate::error::{Error, Result};
use crate::real::device::Gpu;
use crate::real::ulysses::{Layout, Packed};

/// Whether libnccl can be loaded (checked without panicking).
pub fn available() -> bool {
    // SAFETY: only tries to dlopen the library by its candidate names.
    unsafe { sys::is_culib_present() }
}

fn nccl_err(what: &str, e: result::NcclError) -> Error {
    Error::Executor(format!("NCCL {what}: {e:?}"))
}

/// One communicator per device of a GPU set, rank `i` on the set's `i`-th device.
pub struct Communicator {
    comms: Vec<sys::ncclComm_t>,
    pub ordinals: Vec<usize>,
    /// How long `ncclCommInitAll` took.
    pub created_in: Duration,
}

impl Communicator {
    /// Creates the communicators of `ordinals` (at least two distinct devices).
    pub fn new(ordinals: &[usize]) -> Result<Communicator> {
        if !available() {
            return Err(Error::Executor(
                "NCCL (libnccl) was not found: `pip install nvidia-nccl-cu12` (or the CUDA 13 wheel) and add its lib folder to LD_LIBRARY_PATH".into(),
            ));
        }
        if ordinals.len() < 2 {
            return Err(Error::Executor(
                "an NCCL group needs at least two devices".into(),
            ));
        }
        let list: Vec<i32> = ordinals.iter().map(|&o| o as i32).collect();
        let mut comms = vec![std::ptr::null_mut(); list.len()];
        let start = Instant::now();
        // SAFETY: `comms` has room for one handle per listed device.
        unsafe { result::comm_init_all(comms.as_mut_ptr(), list.len() as i32, list.as_ptr()) }
            .map_err(|e| {
                nccl_err(
                    &format!("creating communicators for devices {ordinals:?}"),
                    e,
                )
            })?;
        Ok(Communicator {
            comms,
            ordinals: ordinals.to_vec(),
            created_in: start.elapsed(),
        })
    }

    pub fn ranks(&self) -> usize {
        self.comms.len()
    }

    /// Runs one exchange: rank `r` sends `packed.counts[r][d]` bf16 values from
    /// `send[r] + send_start(r, d)` to rank `d`, which receives them at
    /// `recv[d] + recv_start(r, d)`; each rank's calls go on `gpus[r]`'s stream (queued, not
    /// waited for). Buffers are device addresses on the rank's device.
    pub fn exchange(
        &self,
        gpus: &[&Gpu],
        send: &[u64],
        recv: &[u64],
        packed: &Packed,
    ) -> Result<()> {
        let n = self.ranks();
        if gpus.len() != n || send.len() != n || recv.len() != n || packed.counts.len() != n {
            return Err(Error::Executor(format!(
                "an exchange over {n} ranks got {} devices and {}/{} buffers",
                gpus.len(),
                send.len(),
                recv.len()
            )));
        }
        result::group_start().map_err(|e| nccl_err("group start", e))?;
        let mut outcome = Ok(());
        'ranks: for r in 0..n {
            let stream = gpus[r].stream.cu_stream() as sys::cudaStream_t;
            for d in 0..n {
                let out = packed.counts[r][d];
                let inc = packed.counts[d][r];
                // SAFETY: the caller's buffers hold the packed lengths on the rank's device.
                let sent = (out > 0).then(|| unsafe {
                    result::send(
                        (send[r] + 2 * packed.send_start(r, d) as u64) as *const c_void,
                        out,
                        sys::ncclDataType_t::ncclBfloat16,
                        d as i32,
                        self.comms[r],
                        stream,
                    )
                });
                // SAFETY: as above, for the receive buffer.
                let received = (inc > 0).then(|| unsafe {
                    result::recv(
                        (recv[r] + 2 * packed.recv_start(d, r) as u64) as *mut c_void,
                        inc,
                        sys::ncclDataType_t::ncclBfloat16,
                        d as i32,
                        self.comms[r],
                        stream,
                    )
                });
                for x in [sent, received].into_iter().flatten() {
                    if let Err(e) = x {
                        outcome = Err(nccl_err("send/receive", e));
                        break 'ranks;
                    }
                }
            }
        }
        // Always close the group, even after a failed call.
        let end = result::group_end().map_err(|e| nccl_err("group end", e));
        outcome.and(end.map(|_| ()))
    }
}

impl Drop for Communicator {
    fn drop(&mut self) {
        for &c in &self.comms {
            // SAFETY: each handle came from comm_init_all and is destroyed once.
            let _ = unsafe { result::comm_destroy(c) };
        }
    }
}

/// Communicators by GPU set, created on first use (the paper warms a compact overlapping
/// subset ahead of time; here the first step on a new set pays, and the time is recorded).
#[derive(Default)]
pub struct Communicators {
    cache: BTreeMap<Vec<usize>, Communicator>,
}

impl Communicators {
    pub fn get(&mut self, ordinals: &[usize]) -> Result<&Communicator> {
        if !self.cache.contains_key(ordinals) {
            let c = Communicator::new(ordinals)?;
            self.cache.insert(ordinals.to_vec(), c);
        }
        Ok(&self.cache[ordinals])
    }

    /// (GPU set, creation time) of every communicator created so far.
    pub fn created(&self) -> Vec<(Vec<usize>, Duration)> {
        self.cache
            .values()
            .map(|c| (c.ordinals.clone(), c.created_in))
            .collect()
    }
}

/// What [`self_test`] measured.
#[derive(Clone, Debug)]
pub struct SelfTest {
    pub devices: usize,
    pub ranks: usize,
    pub create_ms: f64,
    /// The q/k/v all-to-all of a FLUX.1-dev step at 1024 px across `ranks` GPUs: what one
    /// rank sends to the others (its own share stays local).
    pub exchange_mb: f64,
    pub exchange_ms: f64,
    /// Moving a 2048 px latent from device 0 to device 1 (a degree change across GPU sets).
    pub latent_mb: f64,
    pub latent_ms: f64,
}

/// Checks NCCL on the first 2, 4 or 8 local devices: creates their communicators, runs the
/// q/k/v all-to-all of a Ulysses step of FLUX.1-dev at 1024 px (24 heads of 128, 4,096 image
/// and 512 text tokens) with every element's value encoding where it came from, verifies
/// every received element, and times it; then times a latent hand-off from device 0 to 1.
pub fn self_test(devices: usize) -> Result<SelfTest> {
    let ranks = [8, 4, 2]
        .into_iter()
        .find(|&k| k <= devices)
        .ok_or_else(|| Error::Executor("the NCCL self-test needs two devices".into()))?;
    let gpus: Vec<Gpu> = (0..ranks).map(Gpu::open).collect::<Result<_>>()?;
    let ordinals: Vec<usize> = (0..ranks).collect();
    let comm = Communicator::new(&ordinals)?;
    let lay = Layout::new(4096 + 512, 24, 128, ranks)?;
    let ld = 3 * lay.hidden();
    let blocks = lay.to_heads(3, ld);
    let packed = Packed::new(&blocks, ranks);
    // Send buffers hold, at each position, a code of (source rank, position) in bf16-exact
    // integers below 256; the receiver checks each slice against the codes it expects.
    let code =
        |rank: usize, i: usize| half::bf16::from_f32(((rank * 31 + i) % 251) as f32).to_bits();
    let mut sends = Vec::new();
    let mut recvs = Vec::new();
    for (r, g) in gpus.iter().enumerate() {
        let host: Vec<u16> = (0..packed.send_len(r)).map(|i| code(r, i)).collect();
        let s = g
            .stream
            .clone_htod(&host)
            .map_err(|e| Error::Executor(format!("device {r}: upload: {e}")))?;
        let v = g
            .stream
            .alloc_zeros::<u16>(packed.recv_len(r).max(1))
            .map_err(|e| Error::Executor(format!("device {r}: allocation: {e}")))?;
        sends.push(s);
        recvs.push(v);
    }
    let ptr = |g: &Gpu, s: &cudarc::driver::CudaSlice<u16>| {
        use cudarc::driver::DevicePtr;
        let (p, _sync) = s.device_ptr(&g.stream);
        p
    };
    let send_ptrs: Vec<u64> = gpus.iter().zip(&sends).map(|(g, s)| ptr(g, s)).collect();
    let recv_ptrs: Vec<u64> = gpus.iter().zip(&recvs).map(|(g, s)| ptr(g, s)).collect();
    let refs: Vec<&Gpu> = gpus.iter().collect();
    let sync_all = || gpus.iter().try_for_each(Gpu::synchronize);
    // Warm-up, then timed.
    comm.exchange(&refs, &send_ptrs, &recv_ptrs, &packed)?;
    sync_all()?;
    let start = Instant::now();
    comm.exchange(&refs, &send_ptrs, &recv_ptrs, &packed)?;
    sync_all()?;
    let exchange_ms = start.elapsed().as_secs_f64() * 1e3;
    for (d, (g, v)) in gpus.iter().zip(&recvs).enumerate() {
        let got = g
            .stream
            .clone_dtoh(v)
            .map_err(|e| Error::Executor(format!("device {d}: download: {e}")))?;
        for s in 0..ranks {
            let (from, to, n) = (
                packed.send_start(s, d),
                packed.recv_start(s, d),
                packed.counts[s][d],
            );
            if (0..n).any(|i| got[to + i] != code(s, from + i)) {
                return Err(Error::Executor(format!(
                    "NCCL exchange: device {d} received wrong data from device {s}"
                )));
            }
        }
    }
    // A 2048 px latent (16,384 tokens x 64 channels) from rank 0 to rank 1.
    let latent = 16_384 * 64;
    let mut one_way = vec![vec![0usize; ranks]; ranks];
    one_way[0][1] = latent;
    let hand_off = Packed {
        send_offset: Vec::new(),
        recv_offset: Vec::new(),
        counts: one_way,
    };
    comm.exchange(&refs, &send_ptrs, &recv_ptrs, &hand_off)?;
    sync_all()?;
    let start = Instant::now();
    comm.exchange(&refs, &send_ptrs, &recv_ptrs, &hand_off)?;
    sync_all()?;
    let latent_ms = start.elapsed().as_secs_f64() * 1e3;
    let sent = crate::real::ulysses::sent_by(&blocks, 0);
    Ok(SelfTest {
        devices,
        ranks,
        create_ms: comm.created_in.as_secs_f64() * 1e3,
        exchange_mb: 2.0 * sent as f64 / 1e6,
        exchange_ms,
        latent_mb: 2.0 * latent as f64 / 1e6,
        latent_ms,
    })
}
