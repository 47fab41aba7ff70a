#include "worker/client/ps_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/hash.h"
#include "common/incarnation.h"
#include "common/local_socket.h"
#include "common/packing.h"
#include "common/rpc_security.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "proto/ps.grpc.pb.h"
#include "worker/client/key_chunks.h"
#include "worker/client/retry.h"

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
  o.server_retry_sec = c.server_retry_sec();
  o.security = c.security();
  return o;
}

namespace {

std::chrono::system_clock::time_point DeadlineIn(std::chrono::milliseconds d) {
  return std::chrono::system_clock::now() + d;
}

// Coordinator calls that wait for other workers get an hour, as barriers do.
constexpr std::chrono::hours kWaitForWorkers(1);

// A server that does not answer: gone (UNAVAILABLE: the process died, its
// port refuses connections, keepalive found the connection dead) or silent
// past the call's deadline (stopped, overloaded, cut off). Both are retried:
// a pull has no effect, and a repeated push is not applied twice.
bool IsGone(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE ||
         status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

// One RPC of a pull; `context` is fresh for every attempt.
template <typename Request, typename Response>
struct PullCall {
  size_t server = 0;
  RequestChunk chunk;  // PullSparse
  bool dense = false;  // also pulls the dense table (PullSparseAndDense)
  std::unique_ptr<grpc::ClientContext> context;
  Request request;
  Response response;
  grpc::Status rpc_status;
  absl::Status status;  // of the attempt, with the response checked
};

// One RPC of a push; owned by its completion callback (or, between
// attempts, by its re-send waiting in the DelayedRunner).
struct PushCall {
  std::unique_ptr<grpc::ClientContext> context;
  PushRequest request;
  PushResponse response;
  std::optional<RetryBackoff> backoff;  // from the first failure on
};

// One PushAsync: its RPCs count down `remaining`.
struct PushGroup {
  int remaining = 0;
};

class GrpcPsClient final : public PsClient {
 public:
  GrpcPsClient(const PsClientOptions& options,
               std::shared_ptr<const RpcSecurity> security)
      : options_(options),
        worker_incarnation_(NewIncarnationId()),
        server_incarnation_(
            new std::atomic<uint64_t>[options.servers.size()]()),
        last_warning_(options.servers.size()) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
    args.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
    // Reconnect to a server that comes back as often as calls retry it
    // (gRPC's own default backs off to 2 minutes).
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(
        GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
        static_cast<int>(absl::ToInt64Milliseconds(RetryBackoff::kMaxWait)));
    for (size_t s = 0; s < options.servers.size(); ++s) {
      const std::string& endpoint = options.servers[s];
      std::shared_ptr<grpc::Channel> channel;
      if (!options.local_socket_dir.empty() &&
          RpcSecurity::IsLoopback(endpoint)) {
        // Same host: the server's Unix-domain socket. With TLS the
        // certificate still has to name the TCP address's host.
        grpc::ChannelArguments local_args = args;
        if (security->tls()) {
          local_args.SetSslTargetNameOverride(
              endpoint.substr(0, endpoint.rfind(':')));
        }
        const std::string address =
            LocalSocketAddress(options.local_socket_dir, static_cast<int>(s));
        LOG_IF(INFO, options.worker_rank == 0)
            << "worker 0: server " << s << " (" << endpoint << ") through "
            << address;
        channel = security->Channel(address, local_args);
      } else {
        channel = security->Channel(endpoint, args);
      }
      channels_.push_back(channel);
      stubs_.push_back(PsService::NewStub(channel));
    }
    coordinator_ = Coordinator::NewStub(channels_[0]);
  }

  // Pushes still retrying keep it up to server_retry_sec.
  ~GrpcPsClient() override { PS_IGNORE_STATUS(WaitPushes(0)); }

  absl::Status WaitConnected() {
    auto deadline =
        DeadlineIn(std::chrono::seconds(options_.connect_timeout_sec));
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

  using PsClient::PullSparse;
  absl::Status PullSparse(absl::Span<const SparsePull> tables,
                          int64_t step) override {
    return Pull(tables, nullptr, step);
  }

  absl::Status PullSparseAndDense(absl::Span<const SparsePull> tables,
                                  const DensePull& dense,
                                  int64_t step) override {
    if (dense.blocks == nullptr ||
        static_cast<int64_t>(dense.out.size()) != dense.blocks->size) {
      return absl::InvalidArgumentError(
          absl::StrCat("PullSparseAndDense: buffer of ", dense.out.size(),
                       " floats for a dense table of ",
                       dense.blocks == nullptr ? -1 : dense.blocks->size));
    }
    return Pull(tables, &dense, step);
  }

  // PullSparse, and the dense table when `dense` is not null.
  absl::Status Pull(absl::Span<const SparsePull> tables, const DensePull* dense,
                    int64_t step) {
    std::vector<std::vector<std::vector<uint32_t>>> pos;
    std::vector<int> dims;
    for (const SparsePull& t : tables) {
      if (t.dim < 1 || t.values.size() != t.keys.size() * t.dim) {
        return absl::InvalidArgumentError(absl::StrCat(
            "PullSparse: table ", t.table, ": ", t.keys.size(), " keys x dim ",
            t.dim, " != ", t.values.size(), " floats"));
      }
      pos.push_back(SplitByServer(t.keys));
      dims.push_back(t.dim);
    }
    using SparseCall = PullCall<PullRequest, PullResponse>;
    std::vector<RequestChunk> chunks = ChunkTables(pos, dims);
    // With the dense table: the first request to each server carries it; a
    // server without keys gets a request of its own.
    std::vector<bool> has_dense(stubs_.size(), dense == nullptr);
    if (dense != nullptr) {
      std::vector<bool> has_chunk(stubs_.size(), false);
      for (const RequestChunk& chunk : chunks) has_chunk[chunk.server] = true;
      for (size_t s = 0; s < stubs_.size(); ++s) {
        if (!has_chunk[s]) chunks.push_back(RequestChunk{s, {}});
      }
    }
    std::vector<std::unique_ptr<SparseCall>> calls;
    calls.reserve(chunks.size());
    for (const RequestChunk& chunk : chunks) {
      calls.push_back(std::make_unique<SparseCall>());
      SparseCall* call = calls.back().get();
      call->server = chunk.server;
      call->chunk = chunk;
      call->request.mutable_header()->set_step(step);
      if (!has_dense[chunk.server]) {
        has_dense[chunk.server] = true;
        call->dense = true;
        call->request.add_dense_tables(dense->table);
      }
      std::string* keys = call->request.mutable_keys();
      keys->reserve(chunk.num_keys() * sizeof(uint64_t));
      for (const TableChunk& part : chunk.tables) {
        const SparsePull& t = tables[part.table];
        SparseSegment* seg = call->request.add_sparse();
        seg->set_table_id(t.table);
        seg->set_num_keys(static_cast<uint32_t>(part.pos.size()));
        seg->set_dim(static_cast<uint32_t>(t.dim));
        AppendKeys(t.keys, part.pos, keys);
      }
    }
    // Rows are copied out as each chunk arrives, on gRPC's thread; chunks
    // write disjoint rows of the tables' values, which outlive the calls.
    return PullWithRetry<SparseCall>(
        "Pull", calls,
        [this, tables, dense](SparseCall* call, std::function<void()> done) {
          FillHeader(call->server, call->request.mutable_header());
          stubs_[call->server]->async()->Pull(
              call->context.get(), &call->request, &call->response,
              [this, call, tables, dense, done](grpc::Status status) {
                call->rpc_status = status;
                call->status = ReceiveRows(*call, status, tables);
                if (call->status.ok() && call->dense) {
                  call->status = ReceiveDense(call->server, call->response,
                                              *dense->blocks, dense->out);
                }
                call->response.Clear();
                done();
              });
        });
  }

  using PsClient::PushAsync;
  void PushAsync(absl::Span<const SparsePush> tables, uint32_t dense_table,
                 const DenseBlocks& blocks, absl::Span<const float> dense_grad,
                 int64_t step) override {
    Push(tables, dense_table, blocks, dense_grad, step, /*is_delta=*/false);
  }

  using PsClient::PushDeltasAsync;
  void PushDeltasAsync(absl::Span<const SparsePush> tables,
                       uint32_t dense_table, const DenseBlocks& blocks,
                       absl::Span<const float> dense_delta,
                       int64_t step) override {
    Push(tables, dense_table, blocks, dense_delta, step, /*is_delta=*/true);
  }

  int InFlightPushes() override {
    absl::MutexLock lock(&mu_);
    return in_flight_;
  }

  absl::Status WaitPushes(int max_in_flight) override {
    absl::MutexLock lock(&mu_);
    while (in_flight_ > max_in_flight) push_done_.Wait(&mu_);
    return push_error_;
  }

  absl::Status PullDense(uint32_t table, const DenseBlocks& blocks,
                         absl::Span<float> out, int64_t step) override {
    if (static_cast<int64_t>(out.size()) != blocks.size) {
      return absl::InvalidArgumentError(
          absl::StrCat("PullDense: buffer of ", out.size(),
                       " floats for a table of ", blocks.size));
    }
    using DenseCall = PullCall<PullRequest, PullResponse>;
    std::vector<std::unique_ptr<DenseCall>> calls(stubs_.size());
    for (size_t s = 0; s < stubs_.size(); ++s) {
      calls[s] = std::make_unique<DenseCall>();
      calls[s]->server = s;
      calls[s]->request.mutable_header()->set_step(step);
      calls[s]->request.add_dense_tables(table);
    }
    RETURN_IF_ERROR(PullWithRetry<DenseCall>(
        "Pull (dense)", calls,
        [this](DenseCall* call, std::function<void()> done) {
          FillHeader(call->server, call->request.mutable_header());
          stubs_[call->server]->async()->Pull(
              call->context.get(), &call->request, &call->response,
              [this, call, done](grpc::Status status) {
                call->rpc_status = status;
                if (status.ok()) {
                  call->status =
                      CheckIncarnation(call->server, call->response.header());
                }
                done();
              });
        }));
    for (size_t s = 0; s < stubs_.size(); ++s) {
      RETURN_IF_ERROR(ReceiveDense(s, calls[s]->response, blocks, out));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<ResumeInfo> Register() override {
    RegisterRequest request;
    request.set_worker_rank(options_.worker_rank);
    request.set_num_workers(options_.num_workers);
    RegisterResponse response;
    RETURN_IF_ERROR(CallWithRetry(0, "Register", [&] {
      grpc::ClientContext context;
      context.set_wait_for_ready(true);
      context.set_deadline(
          DeadlineIn(std::chrono::seconds(options_.connect_timeout_sec)));
      return coordinator_->Register(&context, request, &response);
    }));
    if (response.num_servers() != num_servers()) {
      return absl::FailedPreconditionError(
          absl::StrCat("coordinator says the job has ", response.num_servers(),
                       " servers, this worker's config lists ", num_servers()));
    }
    ResumeInfo info;
    if (response.has_resume_position())
      info.position = response.resume_position();
    info.step = response.resume_step();
    info.resumed_from = response.resumed_from();
    info.generation = response.generation();
    generation_.store(response.generation());
    // Pushes carry the steps since the previous one; the first after a
    // resume starts after the resumed step.
    last_push_step_ =
        response.has_resume_position() ? response.resume_step() : int64_t{0};
    return info;
  }

  absl::StatusOr<int64_t> Recover(int64_t generation,
                                  const std::string& reason) override {
    RecoverRequest request;
    request.set_worker_rank(options_.worker_rank);
    request.set_generation(generation);
    request.set_reason(reason);
    RecoverResponse response;
    RETURN_IF_ERROR(CallWithRetry(0, "Recover", [&] {
      grpc::ClientContext context;
      context.set_deadline(DeadlineIn(kWaitForWorkers));
      return coordinator_->Recover(&context, request, &response);
    }));
    return response.generation();
  }

  absl::StatusOr<bool> WaitJobEnd(int64_t generation) override {
    WaitJobEndRequest request;
    request.set_worker_rank(options_.worker_rank);
    request.set_generation(generation);
    if (finish_ended_job_.load()) return false;
    WaitJobEndResponse response;
    absl::Status status = CallWithRetry(0, "WaitJobEnd", [&] {
      grpc::ClientContext context;
      context.set_deadline(DeadlineIn(std::chrono::hours(24)));
      grpc::Status s = coordinator_->WaitJobEnd(&context, request, &response);
      // Server 0 stopping after the job's end: not worth a retry.
      if (s.error_code() == grpc::StatusCode::UNAVAILABLE &&
          absl::StrContains(s.error_message(), "coordinator stopping")) {
        return grpc::Status::OK;
      }
      return s;
    });
    if (IsRollback(status)) return true;
    RETURN_IF_ERROR(status);
    return response.rolled_back();
  }

  absl::StatusOr<int64_t> Heartbeat(int64_t step) override {
    grpc::ClientContext context;
    context.set_deadline(RpcDeadline());
    HeartbeatRequest request;
    request.set_worker_rank(options_.worker_rank);
    request.set_generation(generation_.load());
    request.set_step(step);
    HeartbeatResponse response;
    grpc::Status status = coordinator_->Heartbeat(&context, request, &response);
    if (!status.ok()) return FromGrpcStatus(status, Name(0), "Heartbeat");
    return response.checkpoint_pending();
  }

  absl::StatusOr<std::string> CheckpointArrive(int64_t step,
                                               const DataPosition& position,
                                               int64_t checkpoint_id) override {
    CheckpointArriveRequest request;
    request.set_worker_rank(options_.worker_rank);
    request.set_generation(generation_.load());
    request.set_step(step);
    *request.mutable_position() = position;
    request.set_checkpoint_id(checkpoint_id);
    for (size_t i = 0; i < stubs_.size(); ++i) {
      request.add_server_incarnations(server_incarnation_[i].load());
    }
    CheckpointArriveResponse response;
    RETURN_IF_ERROR(CallWithRetry(0, "CheckpointArrive", [&] {
      grpc::ClientContext context;
      context.set_deadline(DeadlineIn(kWaitForWorkers));
      return coordinator_->CheckpointArrive(&context, request, &response);
    }));
    return response.dir();
  }

  using PsClient::Barrier;
  absl::StatusOr<bool> Barrier(const std::string& name, bool has_more,
                               int64_t step,
                               const DataPosition& position) override {
    BarrierRequest request;
    request.set_worker_rank(options_.worker_rank);
    request.set_generation(generation_.load());
    request.set_name(name);
    request.set_has_more(has_more);
    request.set_step(step);
    *request.mutable_position() = position;
    BarrierResponse response;
    RETURN_IF_ERROR(CallWithRetry(0, absl::StrCat("Barrier '", name, "'"), [&] {
      grpc::ClientContext context;
      context.set_deadline(DeadlineIn(kWaitForWorkers));
      return coordinator_->Barrier(&context, request, &response);
    }));
    return response.all_done();
  }

  using PsClient::Finish;
  absl::Status Finish(int64_t examples, const std::string& result, int64_t step,
                      const DataPosition& position) override {
    FinishRequest request;
    request.set_worker_rank(options_.worker_rank);
    request.set_generation(generation_.load());
    request.set_examples(examples);
    request.set_status(result);
    request.set_step(step);
    *request.mutable_position() = position;
    FinishResponse response;
    RETURN_IF_ERROR(CallWithRetry(0, "Finish", [&] {
      grpc::ClientContext context;
      context.set_deadline(RpcDeadline());
      return coordinator_->Finish(&context, request, &response);
    }));
    finish_ended_job_.store(response.job_ending());
    return absl::OkStatus();
  }

  absl::StatusOr<StepGateResult> StepGate(int64_t step, bool done,
                                          int staleness) override {
    StepGateRequest request;
    request.set_worker_rank(options_.worker_rank);
    request.set_generation(generation_.load());
    request.set_step(step);
    request.set_done(done);
    request.set_staleness(staleness);
    StepGateResponse response;
    RETURN_IF_ERROR(CallWithRetry(0, "StepGate", [&] {
      grpc::ClientContext context;
      // Waits for the slowest worker.
      context.set_deadline(DeadlineIn(kWaitForWorkers));
      return coordinator_->StepGate(&context, request, &response);
    }));
    return StepGateResult{response.slowest_step(),
                          response.checkpoint_pending()};
  }

 private:
  std::string Name(size_t s) const {
    return absl::StrCat("server ", s, " (", options_.servers[s], ")");
  }

  // Who sends, and the incarnation of server `s` this worker computed
  // against (0 before its first answer).
  void FillHeader(size_t s, RequestHeader* header) const {
    header->set_worker_rank(options_.worker_rank);
    header->set_worker_incarnation(worker_incarnation_);
    header->set_server_incarnation(server_incarnation_[s].load());
  }

  // Records server `s`'s incarnation from its first answer; a later answer
  // from another incarnation means the server restarted and its shard is
  // not the state this worker trained against: FailedPrecondition.
  absl::Status CheckIncarnation(size_t s, const ResponseHeader& header) {
    uint64_t known = 0;
    const uint64_t now = header.server_incarnation();
    if (server_incarnation_[s].compare_exchange_strong(known, now) ||
        known == now) {
      return absl::OkStatus();
    }
    return absl::FailedPreconditionError(absl::StrCat(
        Name(s), " restarted: incarnation ", absl::Hex(known), ", now ",
        absl::Hex(now),
        "; its shard is not the state this worker trained against, so the "
        "job must resume from a checkpoint"));
  }

  std::chrono::system_clock::time_point RpcDeadline() const {
    return DeadlineIn(std::chrono::milliseconds(options_.rpc_timeout_ms));
  }

  // After a failed attempt of `method` to server `s` at `now`: starts
  // `*backoff` at the first failure and returns the wait before the next
  // attempt, logging it; nullopt when the retry budget is spent.
  std::optional<absl::Duration> NextRetry(size_t s, absl::string_view method,
                                          const grpc::Status& status,
                                          std::optional<RetryBackoff>* backoff,
                                          absl::Time now) {
    if (!backoff->has_value()) {
      backoff->emplace(absl::Seconds(options_.server_retry_sec), now);
    }
    std::optional<absl::Duration> wait = (*backoff)->Next(now);
    if (!wait.has_value()) return std::nullopt;
    {
      // At most one line per server per second.
      absl::MutexLock lock(&warn_mu_);
      if (now - last_warning_[s] < absl::Seconds(1)) return wait;
      last_warning_[s] = now;
    }
    LOG(WARNING) << absl::StrFormat(
        "worker %d: %s does not answer: %s: %s; retrying in %.1f s, %.0f s of "
        "%d",
        options_.worker_rank, Name(s), method, status.error_message(),
        absl::ToDoubleSeconds(*wait),
        absl::ToDoubleSeconds((*backoff)->Elapsed(now)),
        options_.server_retry_sec);
    return wait;
  }

  // The error of `method` to server `s` that failed with `status`;
  // `backoff` is set when it was retried.
  absl::Status CallError(size_t s, absl::string_view method,
                         const grpc::Status& status,
                         const std::optional<RetryBackoff>& backoff) const {
    if (!IsGone(status)) return FromGrpcStatus(status, Name(s), method);
    const double waited =
        backoff.has_value()
            ? absl::ToDoubleSeconds(backoff->Elapsed(absl::Now()))
            : 0.0;
    return absl::UnavailableError(
        absl::StrFormat("%s to %s: server does not answer, none for %.1f s "
                        "(cluster.server_retry_sec %d): %s",
                        method, Name(s), waited, options_.server_retry_sec,
                        status.error_message()));
  }

  // Runs `attempt` (one blocking RPC to server `s` with its own context)
  // until it succeeds, fails other than UNAVAILABLE, or the retry budget is
  // spent.
  absl::Status CallWithRetry(size_t s, absl::string_view method,
                             const std::function<grpc::Status()>& attempt) {
    std::optional<RetryBackoff> backoff;
    while (true) {
      grpc::Status status = attempt();
      if (!IsGone(status)) return FromGrpcStatus(status, Name(s), method);
      std::optional<absl::Duration> wait =
          NextRetry(s, method, status, &backoff, absl::Now());
      if (!wait.has_value()) return CallError(s, method, status, backoff);
      absl::SleepFor(*wait);
    }
  }

  // Sends every call of `calls` (start(call, done) issues one asynchronous
  // RPC on call->context and runs done() when call->rpc_status and
  // call->status are set), waits, and re-sends those that failed with
  // UNAVAILABLE after a backoff. Returns the first other error, or the
  // UNAVAILABLE error once the retry budget is spent.
  template <typename C>
  absl::Status PullWithRetry(
      absl::string_view method, const std::vector<std::unique_ptr<C>>& calls,
      const std::function<void(C*, std::function<void()>)>& start) {
    std::vector<C*> pending;
    for (const auto& call : calls) pending.push_back(call.get());
    std::optional<RetryBackoff> backoff;
    while (true) {
      absl::BlockingCounter done(static_cast<int>(pending.size()));
      for (C* call : pending) {
        call->context = std::make_unique<grpc::ClientContext>();
        call->context->set_deadline(RpcDeadline());
        call->status = absl::OkStatus();
        start(call, [&done] { done.DecrementCount(); });
      }
      done.Wait();
      std::vector<C*> gone;
      for (C* call : pending) {
        if (IsGone(call->rpc_status)) {
          gone.push_back(call);
        } else if (!call->rpc_status.ok()) {
          return FromGrpcStatus(call->rpc_status, Name(call->server), method);
        } else if (!call->status.ok()) {
          return call->status;
        }
      }
      if (gone.empty()) return absl::OkStatus();
      const absl::Time now = absl::Now();
      std::optional<absl::Duration> wait;
      for (C* call : gone) {
        // One backoff for the pull; every gone server is named.
        std::optional<absl::Duration> w =
            NextRetry(call->server, method, call->rpc_status, &backoff, now);
        if (!w.has_value()) {
          return CallError(call->server, method, call->rpc_status, backoff);
        }
        if (!wait.has_value()) wait = w;
      }
      absl::SleepFor(*wait);
      pending = std::move(gone);
    }
  }

  // One push: per server, its sparse chunks and its dense blocks (in the
  // first request to it), numbered part 0..parts-1 of `step`.
  void Push(absl::Span<const SparsePush> tables, uint32_t dense_table,
            const DenseBlocks& blocks, absl::Span<const float> dense_grad,
            int64_t step, bool is_delta) {
    std::vector<std::vector<std::shared_ptr<PushCall>>> per_server(
        stubs_.size());
    auto new_call = [&](size_t s) {
      auto call = std::make_shared<PushCall>();
      call->request.mutable_header()->set_step(step);
      call->request.set_is_delta(is_delta);
      per_server[s].push_back(call);
      return call.get();
    };
    std::vector<std::vector<std::vector<uint32_t>>> pos;
    std::vector<int> dims;
    // Shows and clicks go with every table's keys, or with none.
    bool counted = !tables.empty();
    for (const SparsePush& t : tables) {
      CHECK_EQ(t.values.size(), t.keys.size() * t.dim)
          << "push of table " << t.table;
      pos.push_back(SplitByServer(t.keys));
      dims.push_back(t.dim);
      counted = counted && t.shows.size() == t.keys.size() &&
                t.clicks.size() == t.keys.size();
    }
    for (const RequestChunk& chunk : ChunkTables(pos, dims)) {
      PushRequest& r = new_call(chunk.server)->request;
      std::string* keys = r.mutable_keys();
      std::string* grads = r.mutable_grads();
      std::string* shows = r.mutable_shows();
      std::string* clicks = r.mutable_clicks();
      for (const TableChunk& part : chunk.tables) {
        const SparsePush& t = tables[part.table];
        SparseSegment* seg = r.add_sparse();
        seg->set_table_id(t.table);
        seg->set_num_keys(static_cast<uint32_t>(part.pos.size()));
        seg->set_dim(static_cast<uint32_t>(t.dim));
        AppendKeys(t.keys, part.pos, keys);
        AppendRows(t.values, part.pos, t.dim, grads);
        if (counted) {
          AppendRows(t.shows, part.pos, 1, shows);
          AppendRows(t.clicks, part.pos, 1, clicks);
        }
      }
    }
    if (!dense_grad.empty()) {
      for (size_t s = 0; s < stubs_.size(); ++s) {
        auto ranges = blocks.RangesOf(static_cast<int>(s));
        if (ranges.empty()) continue;
        PushRequest& r = per_server[s].empty() ? new_call(s)->request
                                               : per_server[s][0]->request;
        DenseSegment* seg = r.add_dense();
        seg->set_table_id(dense_table);
        seg->set_num_values(
            static_cast<uint64_t>(blocks.SizeOn(static_cast<int>(s))));
        std::string* g = r.mutable_dense_grads();
        g->reserve(blocks.SizeOn(static_cast<int>(s)) * sizeof(float));
        for (const auto& [begin, end] : ranges) {
          g->append(reinterpret_cast<const char*>(dense_grad.data() + begin),
                    (end - begin) * sizeof(float));
        }
      }
    }
    // The steps since the previous push are merged into this one.
    const int64_t merged =
        std::max<int64_t>(0, step - std::max(last_push_step_, int64_t{-1}) - 1);
    last_push_step_ = step;
    auto group = std::make_shared<PushGroup>();
    for (const auto& calls : per_server) {
      for (size_t i = 0; i < calls.size(); ++i) {
        calls[i]->request.set_part(static_cast<uint32_t>(i));
        calls[i]->request.set_parts(static_cast<uint32_t>(calls.size()));
        calls[i]->request.set_merged_steps(static_cast<uint32_t>(merged));
        ++group->remaining;
      }
    }
    if (group->remaining == 0) return;
    {
      absl::MutexLock lock(&mu_);
      ++in_flight_;
    }
    for (size_t s = 0; s < per_server.size(); ++s) {
      for (auto& call : per_server[s]) SendPush(s, std::move(call), group);
    }
  }

  // Sends one RPC of a push (again, after a failure); an answer that does
  // not come (UNAVAILABLE, DEADLINE_EXCEEDED) re-sends it from the
  // DelayedRunner after a backoff: the server applies it once.
  void SendPush(size_t s, std::shared_ptr<PushCall> call,
                std::shared_ptr<PushGroup> group) {
    PushCall* c = call.get();
    c->context = std::make_unique<grpc::ClientContext>();
    c->context->set_deadline(RpcDeadline());
    FillHeader(s, c->request.mutable_header());
    stubs_[s]->async()->Push(
        c->context.get(), &c->request, &c->response,
        [this, s, call = std::move(call),
         group = std::move(group)](grpc::Status status) mutable {
          if (IsGone(status)) {
            const absl::Time now = absl::Now();
            std::optional<absl::Duration> wait =
                NextRetry(s, "Push", status, &call->backoff, now);
            if (wait.has_value()) {
              runner_.RunAt(now + *wait, [this, s, call, group] {
                SendPush(s, call, group);
              });
              return;
            }
          }
          absl::Status error =
              status.ok() ? CheckIncarnation(s, call->response.header())
                          : CallError(s, "Push", status, call->backoff);
          if (status.ok() && call->response.duplicate()) {
            duplicates_.fetch_add(1, std::memory_order_relaxed);
            VLOG(1) << "worker " << options_.worker_rank << ": " << Name(s)
                    << " had applied the push of step "
                    << call->request.header().step() << " part "
                    << call->request.part() << " already";
          }
          // The call (and its ClientContext) is gone before the push
          // counts as done, so nothing of it outlives WaitPushes(0).
          call.reset();
          OnPushDone(error, group.get());
        });
  }

  void OnPushDone(const absl::Status& status, PushGroup* group) {
    absl::MutexLock lock(&mu_);
    if (!status.ok() && push_error_.ok()) {
      push_error_ = status;
      LOG(ERROR) << "worker " << options_.worker_rank << ": " << push_error_;
    }
    if (--group->remaining == 0) {
      --in_flight_;
      push_done_.SignalAll();
    }
  }

  // Checks the rows `call` received and copies them into their places in
  // the tables' values; the error names the server.
  absl::Status ReceiveRows(const PullCall<PullRequest, PullResponse>& call,
                           const grpc::Status& status,
                           absl::Span<const SparsePull> tables) {
    const size_t s = call.chunk.server;
    if (!status.ok()) return FromGrpcStatus(status, Name(s), "Pull");
    RETURN_IF_ERROR(CheckIncarnation(s, call.response.header()));
    const std::string& bytes = call.response.values();
    size_t expected = 0;
    for (const TableChunk& part : call.chunk.tables) {
      expected += part.pos.size() * tables[part.table].dim * sizeof(float);
    }
    if (bytes.size() != expected) {
      return absl::InternalError(absl::StrCat(
          "Pull from ", Name(s), ": expected ", expected / sizeof(float),
          " floats of rows (", call.chunk.num_keys(), " keys), got ",
          bytes.size(), " bytes"));
    }
    const float* src = reinterpret_cast<const float*>(bytes.data());
    for (const TableChunk& part : call.chunk.tables) {
      const SparsePull& t = tables[part.table];
      ScatterRows(src, part.pos, t.dim, t.values.data());
      src += part.pos.size() * t.dim;
    }
    return absl::OkStatus();
  }

  // Checks server s's dense blocks in `r` and copies them into their places
  // in `out`; FailedPrecondition naming the server when its table differs.
  absl::Status ReceiveDense(size_t s, const PullResponse& r,
                            const DenseBlocks& blocks, absl::Span<float> out) {
    const std::string& bytes = r.dense_values();
    const int64_t table_size =
        r.dense_table_sizes_size() == 1
            ? static_cast<int64_t>(r.dense_table_sizes(0))
            : -1;
    if (table_size != blocks.size ||
        static_cast<int64_t>(bytes.size()) !=
            blocks.SizeOn(static_cast<int>(s)) *
                static_cast<int64_t>(sizeof(float))) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Pull (dense) from ", Name(s), ": server has a table of ", table_size,
          " floats (", bytes.size() / 4, " here), this worker expects ",
          blocks.size, " (do all processes use the same config?)"));
    }
    const float* src = reinterpret_cast<const float*>(bytes.data());
    for (const auto& [begin, end] : blocks.RangesOf(static_cast<int>(s))) {
      std::copy(src, src + (end - begin), out.begin() + begin);
      src += end - begin;
    }
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

  // Constant after construction.
  const PsClientOptions options_;
  const uint64_t worker_incarnation_;
  // Per server: its incarnation, from its first answer (0: none yet).
  const std::unique_ptr<std::atomic<uint64_t>[]> server_incarnation_;
  // The generation this worker registered in (0 before Register), sent in
  // every coordinator call.
  std::atomic<int64_t> generation_{0};
  // The step of the last push sent (Push: one thread), or where the worker
  // registered to start.
  int64_t last_push_step_ = 0;
  // The last Finish began the job's end.
  std::atomic<bool> finish_ended_job_{false};
  // Pushes the servers had applied already (retries of lost answers).
  std::atomic<int64_t> duplicates_{0};
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<PsService::Stub>> stubs_;
  std::unique_ptr<Coordinator::Stub> coordinator_;

  absl::Mutex mu_;
  absl::CondVar push_done_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status push_error_ ABSL_GUARDED_BY(mu_);

  absl::Mutex warn_mu_;
  // When each server's last retry warning was logged.
  std::vector<absl::Time> last_warning_ ABSL_GUARDED_BY(warn_mu_);

  // Re-sends pushes; destroyed first (before the members its closures use),
  // after the destructor has waited for every push.
  DelayedRunner runner_;
};

}  // namespace

bool IsServerRestart(const absl::Status& status) {
  return status.code() == absl::StatusCode::kFailedPrecondition &&
         (absl::StrContains(status.message(), " restarted") ||
          absl::StrContains(status.message(), "must roll back"));
}

bool IsRollback(const absl::Status& status) {
  return status.code() == absl::StatusCode::kAborted &&
         (absl::StrContains(status.message(), "job rolls back") ||
          absl::StrContains(status.message(), "job rolled back"));
}

bool IsFenced(const absl::Status& status) {
  return status.code() == absl::StatusCode::kAborted &&
         absl::StrContains(status.message(), "fenced until it registers again");
}

absl::StatusOr<std::unique_ptr<PsClient>> PsClient::Connect(
    const PsClientOptions& options) {
  if (options.servers.empty()) {
    return absl::InvalidArgumentError("PsClient: no servers");
  }
  ASSIGN_OR_RETURN(
      std::shared_ptr<const RpcSecurity> security,
      RpcSecurity::Load(options.security, RpcSecurity::Role::kClient));
  auto client = std::make_unique<GrpcPsClient>(options, std::move(security));
  absl::Status status = client->WaitConnected();
  if (!status.ok()) return status;
  return std::unique_ptr<PsClient>(std::move(client));
}

}  // namespace ps
