// ThreadSanitizer annotations for the synchronization of Debian's
// (uninstrumented) Abseil and gRPC; linked into every executable of a
// PS_SANITIZE=thread build only (CMakeLists.txt).
//
// ThreadSanitizer sees a happens-before edge only through an interceptor
// (pthread_mutex_*, ...), an instrumented atomic or an annotation. Two kinds
// of hand-off in the libraries we link are none of these:
//  - absl::Mutex, CondVar, Notification and BlockingCounter: Abseil
//    annotates them for TSan only when Abseil itself is compiled with
//    -fsanitize=thread, and Debian's is not. Every member ABSL_GUARDED_BY an
//    absl::Mutex (ours, and gRPC's: grpc_core::Mutex and gpr_mu are
//    absl::Mutex) would be reported as racing.
//  - RocksDB's group commit: a writer thread becomes the leader of the
//    writes waiting and appends their batches to its own, handing batches
//    and its buffers between threads through RocksDB's atomics. Those
//    appends run in libstdc++'s std::string code, so the accesses are not
//    attributed to RocksDB (and called_from_lib cannot name them); here
//    memory accesses inside DBImpl::Write are ignored, as accesses inside
//    RocksDB are (no code of ours runs inside it).
//  - gRPC's callback API: a callback (a grpc_completion_queue_functor run
//    on a gRPC thread) runs after the grpc_call_start_batch that armed it,
//    but gRPC hands the batch between threads with lock-free queues and
//    atomics. Everything a caller prepared for the callback (the request,
//    the std::function and what it captured) would be reported as racing
//    with the callback.
//
// So this file defines those entry points in the executable. The dynamic
// linker binds every call, from our code and from libgrpc alike, to these
// definitions (an executable's symbols come first); each tells TSan what the
// call does (the __tsan_mutex_* annotations Abseil's own TSan build uses;
// for gRPC a release when a batch starts and an acquire when its callback
// runs) and calls the real function, found with dlsym(RTLD_NEXT). Only
// synchronization is described; no race report is hidden: accesses are
// ignored only inside the Abseil calls themselves (where absl::Condition
// functions run, under the lock).
//
// ~Mutex is left alone: gRPC destroys its mutexes after reference counts
// (uninstrumented atomics) reach zero on another thread, which a destroy
// annotation would report as a race; TSan forgets a lock's state when its
// memory is freed.
//
// Tied to the library builds it wraps (the mangled names below include
// Abseil's inline namespace): a symbol that is not found aborts at the
// first call.

#include <dlfcn.h>
#include <grpc/grpc.h>
#include <link.h>
#include <rocksdb/options.h>
#include <rocksdb/status.h>
#include <rocksdb/write_batch.h>
#include <sanitizer/tsan_interface.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/base/config.h"
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace {

#define PS_STR2(x) #x
#define PS_STR(x) PS_STR2(x)

// "_ZN4absl<inline namespace>" + rest: the mangled name of absl::<rest>.
std::string Mangled(const char* prefix, const char* rest) {
  std::string ns;
#if ABSL_OPTION_USE_INLINE_NAMESPACE
  const std::string name = PS_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  ns = std::to_string(name.size()) + name;
#endif
  return std::string(prefix) + "4absl" + ns + rest;
}

// The real function absl::<rest> (mangled, after the namespace; prefix
// "_ZN", or "_ZNK" for a const member function) of type F.
template <typename F>
F Real(const char* prefix, const char* rest) {
  const std::string name = Mangled(prefix, rest);
  void* f = dlsym(RTLD_NEXT, name.c_str());
  if (f == nullptr) {
    std::fprintf(stderr,
                 "tsan_sync: %s is not in the Abseil library this "
                 "executable loaded; update scripts/sanitizers/"
                 "tsan_sync.cc for its version\n",
                 name.c_str());
    std::abort();
  }
  return reinterpret_cast<F>(f);
}

constexpr unsigned kRead = __tsan_mutex_read_lock;
constexpr unsigned kTry = __tsan_mutex_try_lock;

// Wrapped calls in progress on this thread. The library calls its own entry
// points (CondVar::WaitWithTimeout calls WaitWithDeadline, a Notification
// locks its Mutex): only the outermost call is described to TSan.
thread_local int depth = 0;

// Calls `call` (the real function; it returns a bool, true for a void
// one); when it is the outermost wrapped call, between before() and
// after(result).
template <typename Before, typename Call, typename After>
bool Wrap(Before before, Call call, After after) {
  if (depth > 0) return call();
  ++depth;
  before();
  const bool result = call();
  after(result);
  --depth;
  return result;
}

// A call that takes `mu` (in `flags` mode; a try that may fail when flags
// has kTry): pre_lock ignores accesses (conditions Abseil evaluates) until
// post_lock, which acquires the lock for TSan.
template <typename Call>
bool Locking(void* mu, unsigned flags, Call call) {
  return Wrap([&] { __tsan_mutex_pre_lock(mu, flags); }, call,
              [&](bool ok) {
                const bool failed = (flags & kTry) != 0 && !ok;
                __tsan_mutex_post_lock(
                    mu, flags | (failed ? __tsan_mutex_try_lock_failed : 0), 0);
              });
}

// A call that releases `mu`: pre_unlock releases it for TSan and ignores
// accesses (waiters' conditions Abseil evaluates) until post_unlock.
template <typename Call>
bool Unlocking(void* mu, unsigned flags, Call call) {
  return Wrap([&] { __tsan_mutex_pre_unlock(mu, flags); }, call,
              [&](bool) { __tsan_mutex_post_unlock(mu, flags); });
}

// A wait with `mu` held (exclusively), in which Abseil releases it and
// takes it again: for TSan an unlock before (our accesses so far are
// published) and a lock after (others' are seen); accesses in between
// (conditions, evaluated under the lock) are ignored.
template <typename Call>
bool Waiting(void* mu, Call call) {
  return Wrap([&] { __tsan_mutex_pre_unlock(mu, 0); }, call,
              [&](bool) {
                __tsan_mutex_post_unlock(mu, 0);
                __tsan_mutex_pre_lock(mu, 0);
                __tsan_mutex_post_lock(mu, 0, 0);
              });
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = Real<void (*)(Mutex*)>("_ZN", "5Mutex4LockEv");
  Locking(this, 0, [&] { return real(this), true; });
}

void Mutex::ReaderLock() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real =
      Real<void (*)(Mutex*)>("_ZN", "5Mutex10ReaderLockEv");
  Locking(this, kRead, [&] { return real(this), true; });
}

bool Mutex::TryLock() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = Real<bool (*)(Mutex*)>("_ZN", "5Mutex7TryLockEv");
  return Locking(this, kTry, [&] { return real(this); });
}

bool Mutex::ReaderTryLock() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real =
      Real<bool (*)(Mutex*)>("_ZN", "5Mutex13ReaderTryLockEv");
  return Locking(this, kRead | kTry, [&] { return real(this); });
}

void Mutex::LockWhen(const Condition& cond) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      "_ZN", "5Mutex8LockWhenERKNS0_9ConditionE");
  Locking(this, 0, [&] { return real(this, cond), true; });
}

void Mutex::ReaderLockWhen(const Condition& cond)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      "_ZN", "5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  Locking(this, kRead, [&] { return real(this, cond), true; });
}

// The ...WithTimeout/Deadline lock calls hold the lock on return whatever
// they return (whether the condition became true).
bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real =
      Real<bool (*)(Mutex*, const Condition&, absl::Duration)>(
          "_ZN", "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return Locking(this, 0, [&] { return real(this, cond, timeout); });
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond,
                                      absl::Duration timeout)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real =
      Real<bool (*)(Mutex*, const Condition&, absl::Duration)>(
          "_ZN",
          "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return Locking(this, kRead, [&] { return real(this, cond, timeout); });
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, absl::Time)>(
      "_ZN", "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return Locking(this, 0, [&] { return real(this, cond, deadline); });
}

bool Mutex::ReaderLockWhenWithDeadline(
    const Condition& cond, absl::Time deadline) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, absl::Time)>(
      "_ZN", "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return Locking(this, kRead, [&] { return real(this, cond, deadline); });
}

void Mutex::Unlock() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = Real<void (*)(Mutex*)>("_ZN", "5Mutex6UnlockEv");
  Unlocking(this, 0, [&] { return real(this), true; });
}

void Mutex::ReaderUnlock() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real =
      Real<void (*)(Mutex*)>("_ZN", "5Mutex12ReaderUnlockEv");
  Unlocking(this, kRead, [&] { return real(this), true; });
}

void Mutex::Await(const Condition& cond) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      "_ZN", "5Mutex5AwaitERKNS0_9ConditionE");
  Waiting(this, [&] { return real(this, cond), true; });
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real =
      Real<bool (*)(Mutex*, const Condition&, absl::Duration)>(
          "_ZN", "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return Waiting(this, [&] { return real(this, cond, timeout); });
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, absl::Time)>(
      "_ZN", "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return Waiting(this, [&] { return real(this, cond, deadline); });
}

void CondVar::Wait(Mutex* mu) {
  static const auto real =
      Real<void (*)(CondVar*, Mutex*)>("_ZN", "7CondVar4WaitEPNS0_5MutexE");
  Waiting(mu, [&] { return real(this, mu), true; });
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, absl::Duration)>(
      "_ZN", "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  return Waiting(mu, [&] { return real(this, mu, timeout); });
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, absl::Time)>(
      "_ZN", "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  return Waiting(mu, [&] { return real(this, mu, deadline); });
}

// Notification: Notify publishes through its flag, which HasBeenNotified
// (inline, so instrumented: an acquire load) and the waits' fast path read
// outside the lock. A release on the flag's address before Notify; an
// acquire on it after a wait that saw it set. (The Mutex calls inside are
// left to these.)
namespace {
struct NotificationLayout {  // absl::Notification's members, in order
  Mutex mutex;
  std::atomic<bool> notified_yet;
};
static_assert(sizeof(NotificationLayout) == sizeof(Notification),
              "absl::Notification's layout changed");

void* Flag(const Notification* n) {
  return &reinterpret_cast<NotificationLayout*>(const_cast<Notification*>(n))
              ->notified_yet;
}

template <typename Call>
bool Acquiring(const Notification* n, Call call) {
  return Wrap([] {}, call,
              [&](bool yes) {
                if (yes) __tsan_acquire(Flag(n));
              });
}
}  // namespace

void Notification::Notify() {
  static const auto real =
      Real<void (*)(Notification*)>("_ZN", "12Notification6NotifyEv");
  Wrap([&] { __tsan_release(Flag(this)); }, [&] { return real(this), true; },
       [](bool) {});
}

void Notification::WaitForNotification() const {
  static const auto real = Real<void (*)(const Notification*)>(
      "_ZNK", "12Notification19WaitForNotificationEv");
  Acquiring(this, [&] { return real(this), true; });
}

bool Notification::WaitForNotificationWithTimeout(
    absl::Duration timeout) const {
  static const auto real = Real<bool (*)(const Notification*, absl::Duration)>(
      "_ZNK", "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  return Acquiring(this, [&] { return real(this, timeout); });
}

bool Notification::WaitForNotificationWithDeadline(absl::Time deadline) const {
  static const auto real = Real<bool (*)(const Notification*, absl::Time)>(
      "_ZNK", "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE");
  return Acquiring(this, [&] { return real(this, deadline); });
}

// BlockingCounter: every DecrementCount is ordered before the return of
// Wait (the count is an uninstrumented atomic; only the last decrement
// takes the lock).
bool BlockingCounter::DecrementCount() {
  static const auto real = Real<bool (*)(BlockingCounter*)>(
      "_ZN", "15BlockingCounter14DecrementCountEv");
  return Wrap([&] { __tsan_release(this); }, [&] { return real(this); },
              [](bool) {});
}

void BlockingCounter::Wait() {
  static const auto real =
      Real<void (*)(BlockingCounter*)>("_ZN", "15BlockingCounter4WaitEv");
  Wrap([] {}, [&] { return real(this), true; },
       [&](bool) { __tsan_acquire(this); });
}

ABSL_NAMESPACE_END
}  // namespace absl

// gRPC's callback API. grpc_call_start_batch releases on the batch's tag;
// when the tag is a functor of ours (its functor_run is in the executable:
// grpcpp's CallbackWithStatusTag and CallbackWithSuccessTag), functor_run is
// pointed at a trampoline that acquires on the tag and then runs the
// original. (Other tags are objects whose first word is a vtable pointer,
// outside the executable's code.)
namespace {

using FunctorRun = void (*)(grpc_completion_queue_functor*, int);

// The executable's code, [begin, end).
struct Text {
  uintptr_t begin = 0;
  uintptr_t end = 0;
};

Text ExecutableText() {
  Text text;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        // The first entry is the executable.
        auto* t = static_cast<Text*>(data);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) != 0) {
            t->begin = info->dlpi_addr + ph.p_vaddr;
            t->end = t->begin + ph.p_memsz;
            break;
          }
        }
        return 1;
      },
      &text);
  return text;
}

// The original functor_run of each trampoline, learned as they are met
// (grpcpp has two). Relaxed: code addresses publish no data.
constexpr int kRuns = 4;
std::atomic<FunctorRun> original_runs[kRuns];

template <int I>
void RunAfterAcquire(grpc_completion_queue_functor* functor, int ok) {
  __tsan_acquire(functor);
  original_runs[I].load(std::memory_order_relaxed)(functor, ok);
}

constexpr FunctorRun kTrampolines[kRuns] = {
    RunAfterAcquire<0>, RunAfterAcquire<1>, RunAfterAcquire<2>,
    RunAfterAcquire<3>};

// The trampoline for `run`, or nullptr when every slot is taken.
FunctorRun TrampolineFor(FunctorRun run) {
  for (int i = 0; i < kRuns; ++i) {
    FunctorRun seen = original_runs[i].load(std::memory_order_relaxed);
    if (seen == nullptr && original_runs[i].compare_exchange_strong(
                               seen, run, std::memory_order_relaxed)) {
      return kTrampolines[i];
    }
    if (seen == run) return kTrampolines[i];
  }
  return nullptr;
}

// Points a functor tag of ours at its trampoline (left alone when it is
// one already, a reused CallbackWithSuccessTag).
void Redirect(void* tag) {
  static const Text text = ExecutableText();
  const uintptr_t first = *static_cast<uintptr_t*>(tag);
  if (first < text.begin || first >= text.end) return;
  auto* functor = static_cast<grpc_completion_queue_functor*>(tag);
  for (FunctorRun trampoline : kTrampolines) {
    if (functor->functor_run == trampoline) return;
  }
  FunctorRun trampoline = TrampolineFor(functor->functor_run);
  if (trampoline != nullptr) functor->functor_run = trampoline;
}

}  // namespace

extern "C" grpc_call_error grpc_call_start_batch(grpc_call* call,
                                                 const grpc_op* ops,
                                                 size_t nops, void* tag,
                                                 void* reserved) {
  using Fn =
      grpc_call_error (*)(grpc_call*, const grpc_op*, size_t, void*, void*);
  static const Fn real =
      reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "grpc_call_start_batch"));
  if (real == nullptr) {
    std::fprintf(stderr, "tsan_sync: grpc_call_start_batch not found\n");
    std::abort();
  }
  if (tag != nullptr &&
      reinterpret_cast<uintptr_t>(tag) % alignof(void*) == 0) {
    Redirect(tag);
    __tsan_release(tag);
  }
  return real(call, ops, nops, tag, reserved);
}

// RocksDB's DB::Write (DBImpl's, through its vtable): accesses inside are
// RocksDB's own (see the top of the file). The free function has the
// member function's calling convention (the Status return slot first, then
// `this`).
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);

rocksdb::Status
RocksDbWrite(void* db, const rocksdb::WriteOptions& options, rocksdb::WriteBatch* batch) __asm__(
    "_ZN7rocksdb6DBImpl5WriteERKNS_12WriteOptionsEPNS_10WriteBatchE");

rocksdb::Status RocksDbWrite(void* db, const rocksdb::WriteOptions& options,
                             rocksdb::WriteBatch* batch) {
  using Fn = rocksdb::Status (*)(void*, const rocksdb::WriteOptions&,
                                 rocksdb::WriteBatch*);
  static const Fn real = reinterpret_cast<Fn>(
      dlsym(RTLD_NEXT,
            "_ZN7rocksdb6DBImpl5WriteERKNS_12WriteOptionsEPNS_10WriteBatchE"));
  if (real == nullptr) {
    std::fprintf(stderr, "tsan_sync: rocksdb::DBImpl::Write not found\n");
    std::abort();
  }
  AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
  AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
  rocksdb::Status status = real(db, options, batch);
  AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
  AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  return status;
}
