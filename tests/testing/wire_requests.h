// Pull and push requests as a worker's PsClient builds them, for tests that
// talk to a PsHandler or a PsServer directly (proto/ps.proto).
#ifndef PS_TESTS_TESTING_WIRE_REQUESTS_H_
#define PS_TESTS_TESTING_WIRE_REQUESTS_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "common/packing.h"
#include "proto/ps.pb.h"

namespace ps {

// Rows of `keys` (dim floats each) of sparse table `table`.
inline PullRequest SparsePullRequest(uint32_t table, int dim,
                                     absl::Span<const uint64_t> keys,
                                     int worker = 0) {
  PullRequest r;
  r.mutable_header()->set_worker_rank(worker);
  SparseSegment* seg = r.add_sparse();
  seg->set_table_id(table);
  seg->set_num_keys(static_cast<uint32_t>(keys.size()));
  seg->set_dim(static_cast<uint32_t>(dim));
  r.set_keys(Pack(keys));
  return r;
}

// This server's blocks of dense table `table`.
inline PullRequest DensePullRequest(uint32_t table = 0, int worker = 0) {
  PullRequest r;
  r.mutable_header()->set_worker_rank(worker);
  r.add_dense_tables(table);
  return r;
}

// The floats of a pull's sparse rows / of its (single) dense table.
inline std::vector<float> PulledRows(const PullResponse& response) {
  std::vector<float> out(response.values().size() / sizeof(float));
  if (!out.empty()) {
    std::memcpy(out.data(), response.values().data(),
                out.size() * sizeof(float));
  }
  return out;
}
inline std::vector<float> PulledDense(const PullResponse& response) {
  std::vector<float> out(response.dense_values().size() / sizeof(float));
  if (!out.empty()) {
    std::memcpy(out.data(), response.dense_values().data(),
                out.size() * sizeof(float));
  }
  return out;
}

// A one-part push of worker `worker` at `step` (a server applies each
// (worker, step, part) once: give every push of a test its own step).
// `dim` is the table's row width; grads has keys.size() * dim floats.
inline PushRequest SparsePushRequest(uint32_t table, int dim,
                                     absl::Span<const uint64_t> keys,
                                     absl::Span<const float> grads,
                                     int64_t step, int worker = 0,
                                     bool is_delta = false) {
  PushRequest r;
  r.mutable_header()->set_worker_rank(worker);
  r.mutable_header()->set_step(step);
  r.set_parts(1);
  r.set_is_delta(is_delta);
  SparseSegment* seg = r.add_sparse();
  seg->set_table_id(table);
  seg->set_num_keys(static_cast<uint32_t>(keys.size()));
  seg->set_dim(static_cast<uint32_t>(dim));
  r.set_keys(Pack(keys));
  r.set_grads(Pack(grads));
  return r;
}

// A one-part push of this server's blocks of dense table `table`.
inline PushRequest DensePushRequest(uint32_t table,
                                    absl::Span<const float> grads, int64_t step,
                                    int worker = 0, bool is_delta = false) {
  PushRequest r;
  r.mutable_header()->set_worker_rank(worker);
  r.mutable_header()->set_step(step);
  r.set_parts(1);
  r.set_is_delta(is_delta);
  DenseSegment* seg = r.add_dense();
  seg->set_table_id(table);
  seg->set_num_values(grads.size());
  r.set_dense_grads(Pack(grads));
  return r;
}

}  // namespace ps

#endif  // PS_TESTS_TESTING_WIRE_REQUESTS_H_
