/*
 * sim_recv_pages.c - the destination's PAGES records (see sim_recv.c for
 * the stream they belong to): an index checked whole, then its pages into
 * guest RAM.
 *
 * An uncompressed record is taken in pieces of SIM_PIECE_PAGES pages as it
 * arrives: each piece is hashed and written into the domain's RAM memfd
 * (runs of consecutive pages with one pwrite each) while it is in cache.
 * A compressed record is read whole and decompressed first. A page that
 * became zero is punched out of the memfd.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <zstd.h>

#include "sim_mig.h"

#define PG SIM_PG

/* Where a PAGES record's page data comes from: pieces still to be read
 * from the connection, or all of it in memory already. */
struct pages_in {
	const unsigned char *pi_data;
	uint64_t pi_have, pi_used; /* pages at pi_data, and taken from there */
	uint64_t pi_left;	   /* pages still on the connection */
};

static enum mo_event bad_pages(struct sim_receiver *r)
{
	return sim_fail(r->rv_err, r->rv_errlen, "malformed migration stream: bad PAGES record");
}

/* ---- pages into guest RAM ---- */

static enum mo_event flush_run(struct sim_receiver *r, uint64_t p, const unsigned char *d, uint64_t *k)
{
	int rc = *k ? sim_ram_pwrite(r->rv_m.sm_ram_fd, d, p, *k) : 0;
	*k = 0;
	if (rc == 0)
		return MO_EV_OK;
	mig_seterr(r->rv_err, r->rv_errlen, "cannot write the destination domain's memory (page %" PRIu64 "): %s", p,
		   errno == ENOSPC || errno == ENOMEM ? "out of memory on this host" : strerror(errno ? errno : EIO));
	return MO_EV_LOCAL_ERROR;
}

/* A page sent as zero: if it held data, the data goes back to the host. */
static enum mo_event zero_page(struct sim_receiver *r, uint64_t p)
{
	uint64_t bit = 1ull << (p % 64);
	r->rv_hash[p] = r->rv_zero_hash;
	r->rv_res->zero_pages++;
	r->rv_res->pages++;
	if (!(r->rv_nonzero[p / 64] & bit))
		return MO_EV_OK;
	r->rv_nonzero[p / 64] &= ~bit;
	if (sim_ram_punch(r->rv_m.sm_ram_fd, p) == 0)
		return MO_EV_OK;
	mig_seterr(r->rv_err, r->rv_errlen, "cannot zero page %" PRIu64 " of the destination domain: %s", p,
		   strerror(errno ? errno : EIO));
	return MO_EV_LOCAL_ERROR;
}

/* The next data page: from the piece in hand, else a new piece from the
 * connection (the run before it written first: its data is overwritten). */
static enum mo_event next_data(struct sim_receiver *r, struct pages_in *in, const unsigned char **d,
			       uint64_t run_p, const unsigned char *run_d, uint64_t *run_k)
{
	if (in->pi_used == in->pi_have) {
		if (in->pi_left == 0)
			return bad_pages(r);
		enum mo_event ev = flush_run(r, run_p, run_d, run_k);
		if (ev != MO_EV_OK)
			return ev;
		uint64_t k = in->pi_left < SIM_PIECE_PAGES ? in->pi_left : SIM_PIECE_PAGES;
		if (mig_io_read(r->rv_io, r->rv_data.mb_p, (size_t)(k * PG), r->rv_err, r->rv_errlen) != 0)
			return MO_EV_IO_ERROR;
		in->pi_data = r->rv_data.mb_p;
		in->pi_have = k;
		in->pi_used = 0;
		in->pi_left -= k;
	}
	*d = in->pi_data + in->pi_used++ * PG;
	return MO_EV_OK;
}

/* The index's pages into guest RAM, hashed as they land; consecutive pages
 * whose data is contiguous go in with one pwrite. */
static enum mo_event apply(struct sim_receiver *r, const uint64_t *idx, uint32_t np, struct pages_in *in)
{
	uint64_t run_p = 0, run_k = 0;
	const unsigned char *run_d = NULL;
	for (uint32_t i = 0; i < np; i++) {
		uint64_t p = idx[i] & ~MIG_PAGE_ZERO;
		enum mo_event ev;
		if (idx[i] & MIG_PAGE_ZERO) {
			if (r->rv_nonzero[p / 64] & (1ull << (p % 64)) &&
			    (ev = flush_run(r, run_p, run_d, &run_k)) != MO_EV_OK)
				return ev;
			if ((ev = zero_page(r, p)) != MO_EV_OK)
				return ev;
			continue;
		}
		const unsigned char *d;
		if ((ev = next_data(r, in, &d, run_p, run_d, &run_k)) != MO_EV_OK)
			return ev;
		if (run_k && (p != run_p + run_k || d != run_d + run_k * PG) &&
		    (ev = flush_run(r, run_p, run_d, &run_k)) != MO_EV_OK)
			return ev;
		if (!run_k) {
			run_p = p;
			run_d = d;
		}
		run_k++;
		r->rv_hash[p] = r->rv_hashfn(d); /* as received */
		r->rv_nonzero[p / 64] |= 1ull << (p % 64);
		r->rv_res->pages++;
	}
	return flush_run(r, run_p, run_d, &run_k);
}

/* A compressed record's data, read whole and decompressed: len bytes in,
 * raw_len out. */
static enum mo_event decompress(struct sim_receiver *r, uint64_t len, uint64_t raw_len)
{
	if (!r->rv_dctx)
		return sim_fail(r->rv_err, r->rv_errlen, "compressed pages but compression was not negotiated");
	if (mig_buf_need(&r->rv_in, (size_t)len + 1) != 0 || mig_buf_need(&r->rv_data, (size_t)raw_len + 1) != 0)
		return sim_fail(r->rv_err, r->rv_errlen, "out of memory");
	if (mig_io_read(r->rv_io, r->rv_in.mb_p, (size_t)len, r->rv_err, r->rv_errlen) != 0)
		return MO_EV_IO_ERROR;
	ZSTD_inBuffer zi = {r->rv_in.mb_p, (size_t)len, 0};
	ZSTD_outBuffer zo = {r->rv_data.mb_p, (size_t)raw_len, 0};
	while (zo.pos < zo.size || zi.pos < zi.size) {
		size_t ip = zi.pos, op = zo.pos;
		size_t z = ZSTD_decompressStream(r->rv_dctx, &zo, &zi);
		if (ZSTD_isError(z)) {
			mig_seterr(r->rv_err, r->rv_errlen, "decompression failed: %s", ZSTD_getErrorName(z));
			return MO_EV_LOCAL_ERROR;
		}
		if (zi.pos == ip && zo.pos == op)
			break; /* no progress: short input or output full */
	}
	return zo.pos == zo.size ? MO_EV_OK : bad_pages(r);
}

/* A PAGES record whose header was read: its index checked whole before
 * any page lands, then its pages. */
enum mo_event sim_recv_pages(struct sim_receiver *r, const struct mig_rec_hdr *h)
{
	struct mig_pages ph;
	if (h->rh_len < sizeof ph)
		return bad_pages(r);
	if (mig_io_read(r->rv_io, &ph, sizeof ph, r->rv_err, r->rv_errlen) != 0)
		return MO_EV_IO_ERROR;
	uint64_t idx_len = (uint64_t)ph.ps_npages * 8;
	if (ph.ps_npages > SIM_REC_MAX_INDEX || sizeof ph + idx_len > h->rh_len)
		return bad_pages(r);
	if (mig_buf_need(&r->rv_index, (size_t)idx_len + 8) != 0)
		return sim_fail(r->rv_err, r->rv_errlen, "out of memory");
	if (mig_io_read(r->rv_io, r->rv_index.mb_p, (size_t)idx_len, r->rv_err, r->rv_errlen) != 0)
		return MO_EV_IO_ERROR;
	const uint64_t *idx = (const uint64_t *)(const void *)r->rv_index.mb_p;
	uint64_t ndata = 0, data_len = h->rh_len - sizeof ph - idx_len;
	for (uint32_t i = 0; i < ph.ps_npages; i++) {
		if ((idx[i] & ~MIG_PAGE_ZERO) >= r->rv_m.sm_npages)
			return bad_pages(r);
		ndata += !(idx[i] & MIG_PAGE_ZERO);
	}
	if (ph.ps_raw_len != ndata * PG)
		return bad_pages(r);
	struct pages_in in = {0};
	if (h->rh_flags & MIG_F_COMPRESSED) {
		enum mo_event ev = decompress(r, data_len, ph.ps_raw_len);
		if (ev != MO_EV_OK)
			return ev;
		in.pi_data = r->rv_data.mb_p;
		in.pi_have = ndata;
	} else if (data_len != ph.ps_raw_len) {
		return bad_pages(r);
	} else {
		in.pi_left = ndata;
	}
	return apply(r, idx, ph.ps_npages, &in);
}
