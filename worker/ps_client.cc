#include "worker/ps_client.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <numeric>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/hash.h"
#include "common/packing.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "proto/ps.grpc.pb.h"
#include "worker/key_chunks.h"

namespace ps {

PsClientOptions PsClientOptions::FromConfig(const JobConfig& config,
                                            int worker_rank) {
  PsClientOptions o;
  const ClusterConfig& c = config.cluster();
  o.servers.assign(c.servers().begin(), c.servers().end());
  o.worker_rank = worker_rank;
  o.num_workers = c.num_workers();
  o.max_message_bytes = c.max_message_bytes();
  o.rpc_timeout_ms = c.rpc_timeout_ms();
  o.connect_timeout_sec = c.connect_timeout_sec();
  return o;
}

namespace {

std::chrono::system_clock::time_point DeadlineIn(std::chrono::milliseconds d) {
  return std::chrono::system_clock::now() + d;
}

// The state of one outstanding unary call; owned by its completion callback.
template <typename Request, typename Response>
struct Call {
  grpc::ClientContext context;
  Request request;
  Response response;
  grpc::Status status;
};

// One PushAsync: its RPCs count down `remaining`.
struct PushGroup {
  int remaining = 0;
};

// One PullSparse RPC of a chunk and its outcome.
struct PullCall {
  KeyChunk chunk;
  grpc::ClientContext context;
  PullSparseRequest request;
  PullSparseResponse response;
  absl::Status status;
};

class GrpcPsClient final : public PsClient {
 public:
  explicit GrpcPsClient(const PsClientOptions& options) : options_(options) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
    args.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
    for (const std::string& endpoint : options.servers) {
      auto channel = grpc::CreateCustomChannel(
          endpoint, grpc::InsecureChannelCredentials(), args);
      channels_.push_back(channel);
      stubs_.push_back(PsService::NewStub(channel));
    }
    coordinator_ = Coordinator::NewStub(channels_[0]);
  }

  ~GrpcPsClient() override { PS_IGNORE_STATUS(WaitPushes(0)); }

  absl::Status WaitConnected() {
    auto deadline = DeadlineIn(std::chrono::seconds(options_.connect_timeout_sec));
    std::vector<std::string> down;
    for (size_t s = 0; s < channels_.size(); ++s) {
      if (!channels_[s]->WaitForConnected(deadline)) down.push_back(Name(s));
    }
    if (!down.empty()) {
      return absl::UnavailableError(absl::StrCat(
          "worker ", options_.worker_rank, ": no answer within ",
          options_.connect_timeout_sec, " s from ", absl::StrJoin(down, ", ")));
    }
    return absl::OkStatus();
  }

  int num_servers() const override { return static_cast<int>(stubs_.size()); }

  absl::Status PullSparse(uint32_t table, int dim,
                          absl::Span<const uint64_t> keys,
                          absl::Span<float> values, int64_t step) override {
    if (values.size() != keys.size() * dim) {
      return absl::InvalidArgumentError(absl::StrCat(
          "PullSparse: ", keys.size(), " keys x dim ", dim, " != ",
          values.size(), " floats"));
    }
    const std::vector<std::vector<uint32_t>> pos = SplitByServer(keys);
    const std::vector<KeyChunk> chunks = Chunk(pos, ChunkKeys(dim));
    std::vector<std::unique_ptr<PullCall>> calls;
    calls.reserve(chunks.size());
    absl::BlockingCounter done(static_cast<int>(chunks.size()));
    for (const KeyChunk& chunk : chunks) {
      calls.push_back(std::make_unique<PullCall>());
      PullCall* call = calls.back().get();
      call->chunk = chunk;
      call->request.set_table_id(table);
      call->request.set_worker_rank(options_.worker_rank);
      call->request.set_step(step);
      PackKeys(keys, chunk.pos, call->request.mutable_keys());
      call->context.set_deadline(RpcDeadline());
      // Rows are copied out as each chunk arrives, on gRPC's thread; chunks
      // write disjoint rows of `values`, which outlives the calls.
      stubs_[chunk.server]->async()->PullSparse(
          &call->context, &call->request, &call->response,
          [this, call, dim, values, &done](grpc::Status status) {
            call->status = ReceiveRows(*call, status, dim, values);
            call->response.Clear();
            done.DecrementCount();
          });
    }
    done.Wait();
    for (const auto& call : calls) RETURN_IF_ERROR(call->status);
    return absl::OkStatus();
  }

  using PsClient::PushAsync;
  void PushAsync(uint32_t sparse_table, int dim,
                 absl::Span<const uint64_t> keys, absl::Span<const float> grads,
                 uint32_t dense_table, const DenseBlocks& blocks,
                 absl::Span<const float> dense_grad, int64_t step,
                 absl::Span<const float> shows,
                 absl::Span<const float> clicks) override {
    Push(sparse_table, dim, keys, grads, dense_table, blocks, dense_grad, step,
         /*is_delta=*/false, shows, clicks);
  }

  void PushDeltasAsync(uint32_t sparse_table, int dim,
                       absl::Span<const uint64_t> keys,
                       absl::Span<const float> deltas, uint32_t dense_table,
                       const DenseBlocks& blocks,
                       absl::Span<const float> dense_delta,
                       int64_t step) override {
    Push(sparse_table, dim, keys, deltas, dense_table, blocks, dense_delta,
         step, /*is_delta=*/true, {}, {});
  }

  int InFlightPushes() override {
    absl::MutexLock lock(&mu_);
    return in_flight_;
  }

  absl::StatusOr<int64_t> StepGate(int64_t step, bool done,
                                   int staleness) override {
    grpc::ClientContext context;
    // Waits for the slowest worker: allow an hour, as barriers do.
    context.set_deadline(DeadlineIn(std::chrono::hours(1)));
    StepGateRequest request;
    request.set_worker_rank(options_.worker_rank);
    request.set_step(step);
    request.set_done(done);
    request.set_staleness(staleness);
    StepGateResponse response;
    grpc::Status status = coordinator_->StepGate(&context, request, &response);
    if (!status.ok()) return FromGrpcStatus(status, Name(0), "StepGate");
    return response.slowest_step();
  }

 private:
  void Push(uint32_t sparse_table, int dim, absl::Span<const uint64_t> keys,
            absl::Span<const float> grads, uint32_t dense_table,
            const DenseBlocks& blocks, absl::Span<const float> dense_grad,
            int64_t step, bool is_delta, absl::Span<const float> shows,
            absl::Span<const float> clicks) {
    auto group = std::make_shared<PushGroup>();
    std::vector<std::function<void()>> sends;
    const std::vector<std::vector<uint32_t>> pos = SplitByServer(keys);
    for (const KeyChunk& chunk : Chunk(pos, ChunkKeys(dim))) {
      auto call = std::make_shared<Call<PushSparseRequest, PushResponse>>();
      call->request.set_table_id(sparse_table);
      call->request.set_worker_rank(options_.worker_rank);
      call->request.set_step(step);
      call->request.set_is_delta(is_delta);
      PackKeys(keys, chunk.pos, call->request.mutable_keys());
      std::string* g = call->request.mutable_grads();
      g->resize(chunk.pos.size() * dim * sizeof(float));
      GatherRows(grads.data(), chunk.pos, dim,
                 reinterpret_cast<float*>(g->data()));
      for (const auto& [counts, out] :
           {std::make_pair(shows, call->request.mutable_shows()),
            std::make_pair(clicks, call->request.mutable_clicks())}) {
        if (counts.size() != keys.size()) continue;  // empty: not sent
        out->resize(chunk.pos.size() * sizeof(float));
        GatherRows(counts.data(), chunk.pos, 1,
                   reinterpret_cast<float*>(out->data()));
      }
      call->context.set_deadline(RpcDeadline());
      const size_t s = chunk.server;
      sends.push_back([this, s, call, group] {
        stubs_[s]->async()->PushSparse(
            &call->context, &call->request, &call->response,
            [this, s, call, group](grpc::Status status) mutable {
              // The call (and its ClientContext) is gone before the push counts
              // as done, so nothing of it outlives WaitPushes(0).
              call.reset();
              OnPushDone(s, "PushSparse", status, group.get());
            });
      });
    }
    if (!dense_grad.empty()) {
      for (int s = 0; s < num_servers(); ++s) {
        auto ranges = blocks.RangesOf(s);
        if (ranges.empty()) continue;
        auto call = std::make_shared<Call<PushDenseRequest, PushResponse>>();
        call->request.set_table_id(dense_table);
        call->request.set_worker_rank(options_.worker_rank);
        call->request.set_step(step);
        call->request.set_is_delta(is_delta);
        std::string* g = call->request.mutable_grads();
        g->reserve(blocks.SizeOn(s) * sizeof(float));
        for (const auto& [begin, end] : ranges) {
          g->append(reinterpret_cast<const char*>(dense_grad.data() + begin),
                    (end - begin) * sizeof(float));
        }
        call->context.set_deadline(RpcDeadline());
        sends.push_back([this, s, call, group] {
          stubs_[s]->async()->PushDense(
              &call->context, &call->request, &call->response,
              [this, s, call, group](grpc::Status status) mutable {
                // The call (and its ClientContext) is gone before the push counts
              // as done, so nothing of it outlives WaitPushes(0).
              call.reset();
              OnPushDone(s, "PushDense", status, group.get());
              });
        });
      }
    }
    if (sends.empty()) return;
    {
      absl::MutexLock lock(&mu_);
      group->remaining = static_cast<int>(sends.size());
      ++in_flight_;
    }
    for (auto& send : sends) send();
  }

 public:
  absl::Status WaitPushes(int max_in_flight) override {
    absl::MutexLock lock(&mu_);
    while (in_flight_ > max_in_flight) push_done_.Wait(&mu_);
    return push_error_;
  }

  absl::Status PullDense(uint32_t table, const DenseBlocks& blocks,
                         absl::Span<float> out, int64_t step) override {
    if (static_cast<int64_t>(out.size()) != blocks.size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "PullDense: buffer of ", out.size(), " floats for a table of ",
          blocks.size));
    }
    using DenseCall = Call<PullDenseRequest, PullDenseResponse>;
    std::vector<std::unique_ptr<DenseCall>> calls(stubs_.size());
    absl::BlockingCounter done(num_servers());
    for (size_t s = 0; s < stubs_.size(); ++s) {
      calls[s] = std::make_unique<DenseCall>();
      DenseCall* call = calls[s].get();
      call->request.set_table_id(table);
      call->request.set_worker_rank(options_.worker_rank);
      call->request.set_step(step);
      call->context.set_deadline(RpcDeadline());
      stubs_[s]->async()->PullDense(&call->context, &call->request,
                                    &call->response,
                                    [call, &done](grpc::Status status) {
                                      call->status = std::move(status);
                                      done.DecrementCount();
                                    });
    }
    done.Wait();
    for (size_t s = 0; s < stubs_.size(); ++s) {
      const DenseCall& call = *calls[s];
      if (!call.status.ok()) {
        return FromGrpcStatus(call.status, Name(s), "PullDense");
      }
      const std::string& bytes = call.response.values();
      if (static_cast<int64_t>(call.response.table_size()) != blocks.size ||
          static_cast<int64_t>(bytes.size()) !=
              blocks.SizeOn(static_cast<int>(s)) *
                  static_cast<int64_t>(sizeof(float))) {
        return absl::FailedPreconditionError(absl::StrCat(
            "PullDense from ", Name(s), ": server has a table of ",
            call.response.table_size(), " floats (", bytes.size() / 4,
            " here), this worker expects ", blocks.size,
            " (do all processes use the same config?)"));
      }
      const float* src = reinterpret_cast<const float*>(bytes.data());
      for (const auto& [begin, end] : blocks.RangesOf(static_cast<int>(s))) {
        std::copy(src, src + (end - begin), out.begin() + begin);
        src += end - begin;
      }
    }
    return absl::OkStatus();
  }

  absl::Status Register() override {
    grpc::ClientContext context;
    context.set_wait_for_ready(true);
    context.set_deadline(
        DeadlineIn(std::chrono::seconds(options_.connect_timeout_sec)));
    RegisterRequest request;
    request.set_worker_rank(options_.worker_rank);
    request.set_num_workers(options_.num_workers);
    RegisterResponse response;
    grpc::Status status = coordinator_->Register(&context, request, &response);
    if (!status.ok()) return FromGrpcStatus(status, Name(0), "Register");
    if (response.num_servers() != num_servers()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "coordinator says the job has ", response.num_servers(),
          " servers, this worker's config lists ", num_servers()));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<bool> Barrier(const std::string& name,
                               bool has_more) override {
    grpc::ClientContext context;
    // A barrier waits for the slowest worker: allow an hour.
    context.set_deadline(DeadlineIn(std::chrono::hours(1)));
    BarrierRequest request;
    request.set_worker_rank(options_.worker_rank);
    request.set_name(name);
    request.set_has_more(has_more);
    BarrierResponse response;
    grpc::Status status = coordinator_->Barrier(&context, request, &response);
    if (!status.ok()) {
      return FromGrpcStatus(status, Name(0), absl::StrCat("Barrier '", name, "'"));
    }
    return response.all_done();
  }

  absl::Status Finish(int64_t examples, const std::string& result) override {
    grpc::ClientContext context;
    context.set_deadline(RpcDeadline());
    FinishRequest request;
    request.set_worker_rank(options_.worker_rank);
    request.set_examples(examples);
    request.set_status(result);
    FinishResponse response;
    grpc::Status status = coordinator_->Finish(&context, request, &response);
    return FromGrpcStatus(status, Name(0), "Finish");
  }

 private:
  std::string Name(size_t s) const {
    return absl::StrCat("server ", s, " (", options_.servers[s], ")");
  }

  std::chrono::system_clock::time_point RpcDeadline() const {
    return DeadlineIn(std::chrono::milliseconds(options_.rpc_timeout_ms));
  }

  // Checks the rows `call` received and copies them into their places in
  // `values`; the error names the server.
  absl::Status ReceiveRows(const PullCall& call, const grpc::Status& status,
                           int dim, absl::Span<float> values) const {
    const size_t s = call.chunk.server;
    if (!status.ok()) return FromGrpcStatus(status, Name(s), "PullSparse");
    const std::string& bytes = call.response.values();
    const size_t rows = call.chunk.pos.size();
    if (call.response.dim() != static_cast<uint32_t>(dim) ||
        bytes.size() != rows * dim * sizeof(float)) {
      return absl::InternalError(absl::StrCat(
          "PullSparse from ", Name(s), ": expected ", rows, " rows of dim ",
          dim, ", got ", bytes.size(), " bytes of dim ", call.response.dim()));
    }
    ScatterRows(reinterpret_cast<const float*>(bytes.data()), call.chunk.pos,
                dim, values.data());
    return absl::OkStatus();
  }

  // The positions in `keys` of the keys of every server, increasing.
  std::vector<std::vector<uint32_t>> SplitByServer(
      absl::Span<const uint64_t> keys) const {
    std::vector<std::vector<uint32_t>> pos(stubs_.size());
    const int n = num_servers();
    if (n == 1) {
      pos[0].resize(keys.size());
      std::iota(pos[0].begin(), pos[0].end(), 0u);
      return pos;
    }
    for (size_t i = 0; i < keys.size(); ++i) {
      pos[ServerForKey(keys[i], n)].push_back(static_cast<uint32_t>(i));
    }
    return pos;
  }

  void OnPushDone(size_t server, const char* method,
                  const grpc::Status& status, PushGroup* group) {
    absl::MutexLock lock(&mu_);
    if (!status.ok() && push_error_.ok()) {
      push_error_ = FromGrpcStatus(status, Name(server), method);
      LOG(ERROR) << "worker " << options_.worker_rank << ": " << push_error_;
    }
    if (--group->remaining == 0) {
      --in_flight_;
      push_done_.SignalAll();
    }
  }

  const PsClientOptions options_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<PsService::Stub>> stubs_;
  std::unique_ptr<Coordinator::Stub> coordinator_;

  absl::Mutex mu_;
  absl::CondVar push_done_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status push_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<PsClient>> PsClient::Connect(
    const PsClientOptions& options) {
  if (options.servers.empty()) {
    return absl::InvalidArgumentError("PsClient: no servers");
  }
  auto client = std::make_unique<GrpcPsClient>(options);
  absl::Status status = client->WaitConnected();
  if (!status.ok()) return status;
  return std::unique_ptr<PsClient>(std::move(client));
}

}  // namespace ps
