//! Ulysses sequence parallelism: the layout math shared by the CPU reference
//! ([`CpuDit::step_ulysses`](super::reference::CpuDit::step_ulysses)), the ranks of
//! [`model`](super::model) on host threads, lanes of one GPU ([`lanes`](super::lanes)) and NCCL
//! across GPUs ([`nccl`](super::nccl)).
//!
//! A step on `k` ranks splits the joint sequence (text rows first, then image rows) into `k`
//! contiguous token shards of `ceil(N / k)` rows (the last shards may be shorter, or empty).
//! Everything row-wise (norms, projections, MLPs, RoPE) runs on a rank's own rows. Attention
//! needs every token, so before it an all-to-all turns the token split into a head split:
//! rank `d` receives, from every rank, the columns of q, k and v that belong to its
//! `heads / k` heads, for that rank's rows; it then attends over all `N` tokens on its heads.
//! After attention a second all-to-all turns the head split back into the token split.
//!
//! The two all-to-alls are lists of [`Block`]s, 2-D copies (`rows` rows of `cols` contiguous
//! elements between strided buffers) from one rank's buffer to another's. The same list is
//! applied on the host in tests, as device copies between the lanes of one GPU, and as
//! packed send/receive pairs over NCCL. Sizes are in elements; the caller chooses the type.

use std::ops::Range;

use crate::error::{Error, Result};

/// How `tokens` rows and `heads` heads of `head_dim` are split over `ranks` ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub tokens: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub ranks: usize,
}

/// One 2-D copy: `rows` rows of `cols` contiguous elements, from `src_offset` (row stride
/// `src_ld`) in rank `src_rank`'s buffer to `dst_offset` (row stride `dst_ld`) in rank
/// `dst_rank`'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub src_rank: usize,
    pub src_offset: usize,
    pub src_ld: usize,
    pub dst_rank: usize,
    pub dst_offset: usize,
    pub dst_ld: usize,
    pub rows: usize,
    pub cols: usize,
}

impl Layout {
    /// Fails unless `ranks` is a power of two dividing `heads` and there is a token.
    pub fn new(tokens: usize, heads: usize, head_dim: usize, ranks: usize) -> Result<Layout> {
        if !ranks.is_power_of_two() || !heads.is_multiple_of(ranks) {
            return Err(Error::Executor(format!(
                "Ulysses on {ranks} ranks needs a power of two that divides the {heads} heads"
            )));
        }
        if tokens == 0 || head_dim == 0 {
            return Err(Error::Executor("Ulysses over an empty sequence".into()));
        }
        Ok(Layout {
            tokens,
            heads,
            head_dim,
            ranks,
        })
    }

    /// Rows per token shard: `ceil(tokens / ranks)`.
    pub fn shard(&self) -> usize {
        self.tokens.div_ceil(self.ranks)
    }

    /// The global rows rank `r` holds (empty for trailing ranks of a short sequence).
    pub fn token_range(&self, r: usize) -> Range<usize> {
        let s = self.shard();
        (r * s).min(self.tokens)..((r + 1) * s).min(self.tokens)
    }

    /// Columns of one rank's heads: `heads / ranks * head_dim`.
    pub fn width(&self) -> usize {
        self.heads / self.ranks * self.head_dim
    }

    /// Columns of all heads: `heads * head_dim`.
    pub fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }

    /// The all-to-all before attention. Sources: each rank's token shard, whose rows (stride
    /// `src_ld`, local row 0 = its first global row) hold `parts` blocks of `hidden` columns
    /// (q, k, v). Destinations: each rank's head shard `[tokens, parts x width]`, global rows,
    /// with its heads' columns of part `p` at `p x width`.
    pub fn to_heads(&self, parts: usize, src_ld: usize) -> Vec<Block> {
        let (w, h) = (self.width(), self.hidden());
        let mut v = Vec::with_capacity(self.ranks * self.ranks * parts);
        for src in 0..self.ranks {
            let rows = self.token_range(src);
            if rows.is_empty() {
                continue;
            }
            for dst in 0..self.ranks {
                for p in 0..parts {
                    v.push(Block {
                        src_rank: src,
                        src_offset: p * h + dst * w,
                        src_ld,
                        dst_rank: dst,
                        dst_offset: rows.start * parts * w + p * w,
                        dst_ld: parts * w,
                        rows: rows.len(),
                        cols: w,
                    });
                }
            }
        }
        v
    }

    /// The all-to-all after attention: from each rank's head-shard output `[tokens, width]`
    /// back to each rank's token shard `[its rows, hidden]` (row stride `dst_ld`), its heads'
    /// columns at `rank x width`.
    pub fn to_tokens(&self, dst_ld: usize) -> Vec<Block> {
        let w = self.width();
        let mut v = Vec::with_capacity(self.ranks * self.ranks);
        for src in 0..self.ranks {
            for dst in 0..self.ranks {
                let rows = self.token_range(dst);
                if rows.is_empty() {
                    continue;
                }
                v.push(Block {
                    src_rank: src,
                    src_offset: rows.start * w,
                    src_ld: w,
                    dst_rank: dst,
                    dst_offset: src * w,
                    dst_ld,
                    rows: rows.len(),
                    cols: w,
                });
            }
        }
        v
    }
}

/// Applies `blocks` between host buffers, one per rank.
pub fn apply<T: Copy>(blocks: &[Block], src: &[Vec<T>], dst: &mut [Vec<T>]) {
    for b in blocks {
        for r in 0..b.rows {
            let s = b.src_offset + r * b.src_ld;
            let d = b.dst_offset + r * b.dst_ld;
            dst[b.dst_rank][d..d + b.cols].copy_from_slice(&src[b.src_rank][s..s + b.cols]);
        }
    }
}

/// Where `blocks` sit in contiguous per-rank buffers, for transports that move contiguous
/// memory (NCCL send/receive): each rank packs what it sends into one send buffer, ordered by
/// destination rank, and receives into one buffer ordered by source rank; blocks between the
/// same two ranks keep their list order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packed {
    /// Per block: its offset in its sender's send buffer and in its receiver's receive buffer.
    pub send_offset: Vec<usize>,
    pub recv_offset: Vec<usize>,
    /// `counts[src][dst]`: elements from `src` to `dst` (the slice `dst` receives from `src`).
    pub counts: Vec<Vec<usize>>,
}

impl Packed {
    pub fn new(blocks: &[Block], ranks: usize) -> Packed {
        let mut counts = vec![vec![0usize; ranks]; ranks];
        for b in blocks {
            counts[b.src_rank][b.dst_rank] += b.rows * b.cols;
        }
        let mut p = Packed {
            send_offset: Vec::with_capacity(blocks.len()),
            recv_offset: Vec::with_capacity(blocks.len()),
            counts,
        };
        let mut used = vec![vec![0usize; ranks]; ranks];
        for b in blocks {
            let (src, dst) = (b.src_rank, b.dst_rank);
            let u = used[src][dst];
            p.send_offset.push(p.send_start(src, dst) + u);
            p.recv_offset.push(p.recv_start(src, dst) + u);
            used[src][dst] += b.rows * b.cols;
        }
        p
    }

    /// Elements rank `r` sends in all (its send buffer's length).
    pub fn send_len(&self, r: usize) -> usize {
        self.counts[r].iter().sum()
    }

    /// Elements rank `r` receives in all (its receive buffer's length).
    pub fn recv_len(&self, r: usize) -> usize {
        self.counts.iter().map(|row| row[r]).sum()
    }

    /// Offset of the slice `src` sends to `dst`, in `src`'s send buffer.
    pub fn send_start(&self, src: usize, dst: usize) -> usize {
        self.counts[src][..dst].iter().sum()
    }

    /// Offset of the slice `dst` receives from `src`, in `dst`'s receive buffer.
    pub fn recv_start(&self, src: usize, dst: usize) -> usize {
        self.counts[..src].iter().map(|row| row[dst]).sum()
    }
}

/// Elements a rank sends to other ranks in `blocks` (its own blocks stay local).
pub fn sent_by(blocks: &[Block], rank: usize) -> usize {
    blocks
        .iter()
        .filter(|b| b.src_rank == rank && b.dst_rank != rank)
        .map(|b| b.rows * b.cols)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_sequence_in_order() {
        // 20 tokens on 8 ranks: shards of 3; ranks 0-5 hold 3 rows, rank 6 two, rank 7 none.
        let l = Layout::new(20, 8, 4, 8).unwrap();
        let lens: Vec<usize> = (0..8).map(|r| l.token_range(r).len()).collect();
        assert_eq!(lens, vec![3, 3, 3, 3, 3, 3, 2, 0]);
        assert_eq!(l.token_range(6), 18..20);
        assert_eq!(l.width(), 4);
        assert!(
            Layout::new(20, 6, 4, 4).is_err(),
            "4 does not divide 6 heads"
        );
        assert!(Layout::new(20, 6, 4, 3).is_err(), "not a power of two");
        assert!(Layout::new(0, 8, 4, 2).is_err());
    }

    /// Token-major q/k/v shards whose every element encodes (token, part, column).
    fn token_shards(l: &Layout, parts: usize, ld: usize) -> Vec<Vec<f32>> {
        (0..l.ranks)
            .map(|r| {
                let rows = l.token_range(r);
                let mut v = vec![-1.0; rows.len() * ld];
                for (i, t) in rows.enumerate() {
                    for c in 0..parts * l.hidden() {
                        v[i * ld + c] = (t * 1000 + c) as f32;
                    }
                }
                v
            })
            .collect()
    }

    #[test]
    fn the_all_to_all_gives_each_rank_its_heads_of_every_token() {
        for ranks in [1, 2, 4, 8] {
            let l = Layout::new(21, 8, 2, ranks).unwrap();
            let (parts, ld) = (3, 3 * l.hidden() + 5); // rows wider than q, k, v (a fused MLP part)
            let src = token_shards(&l, parts, ld);
            let w = l.width();
            let mut heads = vec![vec![f32::NAN; l.tokens * parts * w]; ranks];
            apply(&l.to_heads(parts, ld), &src, &mut heads);
            for (d, buf) in heads.iter().enumerate() {
                for t in 0..l.tokens {
                    for p in 0..parts {
                        for j in 0..w {
                            let want = (t * 1000 + p * l.hidden() + d * w + j) as f32;
                            assert_eq!(buf[t * parts * w + p * w + j], want, "k={ranks} d={d}");
                        }
                    }
                }
            }
            // Back: attention outputs [tokens, width] per rank -> token shards [rows, hidden].
            let outs: Vec<Vec<f32>> = (0..ranks)
                .map(|d| {
                    (0..l.tokens * w)
                        .map(|i| ((i / w) * 1000 + d * w + i % w) as f32)
                        .collect()
                })
                .collect();
            let mut back: Vec<Vec<f32>> = (0..ranks)
                .map(|r| vec![f32::NAN; l.token_range(r).len() * l.hidden()])
                .collect();
            apply(&l.to_tokens(l.hidden()), &outs, &mut back);
            for (r, buf) in back.iter().enumerate() {
                for (i, t) in l.token_range(r).enumerate() {
                    for c in 0..l.hidden() {
                        assert_eq!(buf[i * l.hidden() + c], (t * 1000 + c) as f32);
                    }
                }
            }
        }
    }

    #[test]
    fn packing_then_exchanging_slices_equals_the_direct_copies() {
        // What NCCL does: pack strided blocks into send buffers, move slice (src -> dst) from
        // src's send buffer to dst's receive buffer, unpack. Must equal `apply`.
        let l = Layout::new(21, 8, 2, 4).unwrap();
        let ld = 3 * l.hidden() + 3;
        let blocks = l.to_heads(3, ld);
        let p = Packed::new(&blocks, l.ranks);
        let src = token_shards(&l, 3, ld);
        let mut send: Vec<Vec<f32>> = (0..l.ranks).map(|r| vec![0.0; p.send_len(r)]).collect();
        for (b, &at) in blocks.iter().zip(&p.send_offset) {
            for r in 0..b.rows {
                let s = b.src_offset + r * b.src_ld;
                send[b.src_rank][at + r * b.cols..at + (r + 1) * b.cols]
                    .copy_from_slice(&src[b.src_rank][s..s + b.cols]);
            }
        }
        let mut recv: Vec<Vec<f32>> = (0..l.ranks).map(|r| vec![0.0; p.recv_len(r)]).collect();
        for (s, from) in send.iter().enumerate() {
            for (d, to) in recv.iter_mut().enumerate() {
                let (a, b, n) = (p.send_start(s, d), p.recv_start(s, d), p.counts[s][d]);
                to[b..b + n].copy_from_slice(&from[a..a + n]);
            }
        }
        let w = 3 * l.width();
        let mut got = vec![vec![f32::NAN; l.tokens * w]; l.ranks];
        for (b, &at) in blocks.iter().zip(&p.recv_offset) {
            for r in 0..b.rows {
                let d = b.dst_offset + r * b.dst_ld;
                got[b.dst_rank][d..d + b.cols]
                    .copy_from_slice(&recv[b.dst_rank][at + r * b.cols..at + (r + 1) * b.cols]);
            }
        }
        let mut want = vec![vec![f32::NAN; l.tokens * w]; l.ranks];
        apply(&blocks, &src, &mut want);
        assert_eq!(got, want);
    }

    #[test]
    fn each_rank_sends_all_but_its_own_share() {
        // 32 tokens, 4 ranks of 8 rows, 3 parts of width 4 (hidden 16): a rank sends its
        // 8 rows x 3 parts x 4 columns to each of the 3 others.
        let l = Layout::new(32, 8, 2, 4).unwrap();
        let blocks = l.to_heads(3, 48);
        assert_eq!(sent_by(&blocks, 0), 3 * 8 * 3 * 4);
        assert_eq!(
            blocks.iter().map(|b| b.rows * b.cols).sum::<usize>(),
            32 * 3 * 16
        );
    }
}
