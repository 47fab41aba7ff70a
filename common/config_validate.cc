#include "common/config_validate.h"

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/checkpoint.h"
#include "common/config_limits.h"
#include "common/input_shape.h"
#include "common/pipe_path.h"
#include "common/status_macros.h"

namespace ps {

namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::TextFormat;

// Turns a field path ("sparse_tables[1].dim") into "file:line:col" using the
// parser's location tree. A field absent from the file resolves to its
// nearest present ancestor, and to the bare file name at worst.
class Locator {
 public:
  Locator(absl::string_view file, const TextFormat::ParseInfoTree* root)
      : file_(file), root_(root) {}

  std::string Where(absl::string_view path) const {
    const Descriptor* desc = JobConfig::descriptor();
    const TextFormat::ParseInfoTree* tree = root_;
    std::string where(file_);
    for (absl::string_view segment : absl::StrSplit(path, '.')) {
      if (tree == nullptr || desc == nullptr) break;
      int index = -1;
      size_t bracket = segment.find('[');
      absl::string_view name = segment.substr(0, bracket);
      if (bracket != absl::string_view::npos) {
        absl::string_view num =
            segment.substr(bracket + 1, segment.size() - bracket - 2);
        if (!absl::SimpleAtoi(num, &index)) break;
      }
      const FieldDescriptor* field = desc->FindFieldByName(std::string(name));
      if (field == nullptr) break;
      if (field->is_repeated() && index < 0) index = 0;
      auto loc = tree->GetLocation(field, index);
      if (loc.line < 0) break;
      where = absl::StrCat(file_, ":", loc.line + 1, ":", loc.column + 1);
      if (field->type() != FieldDescriptor::TYPE_MESSAGE) break;
      tree = tree->GetTreeForNested(field, index);
      desc = field->message_type();
    }
    return where;
  }

 private:
  std::string file_;
  const TextFormat::ParseInfoTree* root_;
};

class Validator {
 public:
  explicit Validator(const Locator& locator) : locator_(locator) {}

  absl::Status Error(absl::string_view path, absl::string_view reason) const {
    return absl::InvalidArgumentError(
        absl::StrCat(locator_.Where(path), ": ", path, ": ", reason));
  }

  template <typename T>
  absl::Status Range(absl::string_view path, T value, T lo, T hi) const {
    if (!(value >= lo && value <= hi)) {
      return Error(
          path, absl::StrCat("must be in [", lo, ", ", hi, "], got ", value));
    }
    return absl::OkStatus();
  }

 private:
  const Locator& locator_;
};

// The learning-rate schedule of an optimizer (OptimizerConfig).
absl::Status CheckSchedule(const Validator& v, const std::string& path,
                           const OptimizerConfig& opt) {
  // Steps stay below 10^10 (a push's step limit), so longer spans mean
  // nothing.
  constexpr int64_t kMaxSteps = int64_t{10'000'000'000};
  RETURN_IF_ERROR(v.Range<int64_t>(path + ".warmup_steps", opt.warmup_steps(),
                                   0, kMaxSteps));
  if (opt.decay() == OptimizerConfig::NONE) return absl::OkStatus();
  const std::string& decay = OptimizerConfig::Decay_Name(opt.decay());
  if (decay.empty()) {
    return v.Error(path + ".decay",
                   "must be NONE, EXPONENTIAL, INVERSE_SQRT or COSINE");
  }
  if (opt.decay_steps() <= 0 || opt.decay_steps() > kMaxSteps) {
    return v.Error(path + ".decay_steps",
                   absl::StrCat("must be in [1, ", kMaxSteps, "] with decay ",
                                decay, ", got ", opt.decay_steps()));
  }
  if (opt.decay() == OptimizerConfig::EXPONENTIAL &&
      !(opt.decay_rate() > 0 && opt.decay_rate() <= 1)) {
    return v.Error(path + ".decay_rate",
                   absl::StrCat("must be in (0, 1] with decay EXPONENTIAL, "
                                "got ",
                                opt.decay_rate()));
  }
  const float min_lr = opt.min_learning_rate();
  if (!(min_lr >= 0 && min_lr <= opt.learning_rate())) {
    return v.Error(path + ".min_learning_rate",
                   absl::StrCat("must be in [0, learning_rate ",
                                opt.learning_rate(), "], got ", min_lr));
  }
  if (opt.type() == OptimizerConfig::FTRL && !(min_lr > 0)) {
    return v.Error(path + ".min_learning_rate",
                   absl::StrCat("must be > 0 for FTRL with decay ", decay,
                                " (FTRL divides by the learning rate)"));
  }
  return absl::OkStatus();
}

absl::Status CheckOptimizer(const Validator& v, const std::string& path,
                            const OptimizerConfig& opt) {
  if (opt.type() == OptimizerConfig::TYPE_UNSPECIFIED) {
    return v.Error(path + ".type", "must be SGD, ADAGRAD, ADAM or FTRL");
  }
  if (!std::isfinite(opt.learning_rate()) || opt.learning_rate() <= 0) {
    return v.Error(
        path + ".learning_rate",
        absl::StrCat("must be a positive number, got ", opt.learning_rate()));
  }
  if (!std::isfinite(opt.epsilon()) || opt.epsilon() <= 0) {
    return v.Error(path + ".epsilon",
                   absl::StrCat("must be positive, got ", opt.epsilon()));
  }
  if (!std::isfinite(opt.initial_accumulator()) ||
      opt.initial_accumulator() < 0) {
    return v.Error(
        path + ".initial_accumulator",
        absl::StrCat("must be >= 0, got ", opt.initial_accumulator()));
  }
  if (!std::isfinite(opt.weight_bound()) || opt.weight_bound() < 0) {
    return v.Error(path + ".weight_bound",
                   absl::StrCat("must be >= 0, got ", opt.weight_bound()));
  }
  // Adam's decay rates, in [0, 1) (NaN fails both comparisons).
  for (const auto& [field, value] :
       {std::pair<const char*, float>{"beta1", opt.beta1()},
        std::pair<const char*, float>{"beta2", opt.beta2()}}) {
    if (!(value >= 0 && value < 1)) {
      return v.Error(path + "." + field,
                     absl::StrCat("must be in [0, 1), got ", value));
    }
  }
  for (const auto& [field, value] :
       {std::pair<const char*, float>{"ftrl_beta", opt.ftrl_beta()},
        std::pair<const char*, float>{"l1", opt.l1()},
        std::pair<const char*, float>{"l2", opt.l2()}}) {
    if (!std::isfinite(value) || value < 0) {
      return v.Error(path + "." + field,
                     absl::StrCat("must be >= 0, got ", value));
    }
  }
  if (opt.l2_by_frequency() && !(opt.l2() > 0)) {
    return v.Error(path + ".l2_by_frequency",
                   "needs l2 > 0 (it scales l2 by 1 / count)");
  }
  return CheckSchedule(v, path, opt);
}

absl::Status CheckAccessor(const Validator& v, const std::string& path,
                           const AccessorConfig& a) {
  if (a.min_count() < 1) {
    return v.Error(path + ".min_count",
                   absl::StrCat("must be >= 1, got ", a.min_count()));
  }
  if (a.max_pending_keys() < 1) {
    return v.Error(path + ".max_pending_keys",
                   absl::StrCat("must be >= 1, got ", a.max_pending_keys()));
  }
  if (a.max_unseen_steps() < 0) {
    return v.Error(path + ".max_unseen_steps",
                   absl::StrCat("must be >= 0, got ", a.max_unseen_steps()));
  }
  if (a.shrink_every_steps() < 0) {
    return v.Error(path + ".shrink_every_steps",
                   absl::StrCat("must be >= 0, got ", a.shrink_every_steps()));
  }
  if (!std::isfinite(a.score_half_life_steps()) ||
      a.score_half_life_steps() < 0) {
    return v.Error(
        path + ".score_half_life_steps",
        absl::StrCat("must be >= 0, got ", a.score_half_life_steps()));
  }
  for (const auto& [name, value] :
       {std::make_pair("min_score", a.min_score()),
        std::make_pair("nonclick_weight", a.nonclick_weight()),
        std::make_pair("click_weight", a.click_weight())}) {
    if (!std::isfinite(value)) {
      return v.Error(path + "." + name,
                     absl::StrCat("must be finite, got ", value));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckEndpoint(const Validator& v, const std::string& path,
                           const std::string& endpoint) {
  size_t colon = endpoint.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(endpoint.substr(colon + 1), &port) || port < 1 ||
      port > 65535) {
    return v.Error(path, absl::StrCat("'", endpoint,
                                      "' is not host:port with a port in "
                                      "[1, 65535]"));
  }
  return absl::OkStatus();
}

// model.wide_slots / model.deep_slots (`field`): every entry names a slot of
// the data, at most once.
absl::Status CheckModelSlotList(
    const Validator& v, const std::string& field,
    const google::protobuf::RepeatedField<int32_t>& slots, int num_slots) {
  for (int i = 0; i < slots.size(); ++i) {
    const std::string path = absl::StrCat("model.", field, "[", i, "]");
    if (slots[i] < 0 || slots[i] >= num_slots) {
      return v.Error(
          path,
          absl::StrCat("slot ", slots[i], " does not exist: the data has ",
                       num_slots, " sparse slots (0..", num_slots - 1, ")"));
    }
    for (int j = 0; j < i; ++j) {
      if (slots[j] == slots[i]) {
        return v.Error(
            path, absl::StrCat("slot ", slots[i], " is listed twice (also ",
                               field, "[", j, "])"));
      }
    }
  }
  return absl::OkStatus();
}

// The model's slot lists against the data's slot count.
// REQUIRES: c.data() passed validation (its shape is known).
absl::Status CheckModelSlots(const Validator& v, const JobConfig& c) {
  const int num_slots = InputShapeOf(c.data()).num_slots;
  const ModelConfig& m = c.model();
  RETURN_IF_ERROR(
      CheckModelSlotList(v, "wide_slots", m.wide_slots(), num_slots));
  RETURN_IF_ERROR(
      CheckModelSlotList(v, "deep_slots", m.deep_slots(), num_slots));
  // slot_tables: slots of the data, each in one group at most.
  std::vector<std::string> mapped(num_slots);
  for (int g = 0; g < m.slot_tables_size(); ++g) {
    const auto& slots = m.slot_tables(g).slots();
    for (int i = 0; i < slots.size(); ++i) {
      const std::string path =
          absl::StrCat("model.slot_tables[", g, "].slots[", i, "]");
      const int s = slots[i];
      if (s < 0 || s >= num_slots) {
        return v.Error(
            path,
            absl::StrCat("slot ", s, " does not exist: the data has ",
                         num_slots, " sparse slots (0..", num_slots - 1, ")"));
      }
      if (!mapped[s].empty()) {
        return v.Error(path, absl::StrCat("slot ", s, " is mapped twice (also ",
                                          mapped[s], ")"));
      }
      mapped[s] = path;
    }
  }
  if (m.sparse_table().empty()) {
    for (int s = 0; s < num_slots; ++s) {
      if (mapped[s].empty()) {
        return v.Error("model.sparse_table",
                       absl::StrCat("is required: slot ", s,
                                    " is in no model.slot_tables entry"));
      }
    }
  }
  return absl::OkStatus();
}

// checkpoint: a directory when present, non-negative periods, keep >= 1.
absl::Status CheckCheckpoint(const Validator& v, const JobConfig& c) {
  if (!c.has_checkpoint()) return absl::OkStatus();
  const CheckpointConfig& ck = c.checkpoint();
  if (ck.dir().empty()) {
    return v.Error("checkpoint.dir",
                   "is required when a checkpoint section is present");
  }
  RETURN_IF_ERROR(v.Range<int64_t>("checkpoint.every_steps", ck.every_steps(),
                                   0, int64_t{1} << 50));
  RETURN_IF_ERROR(
      v.Range("checkpoint.every_minutes", ck.every_minutes(), 0, 525600));
  return v.Range("checkpoint.keep", ck.keep(), 1, 1000);
}

// export: a folder, a period, and checkpoints to export from.
absl::Status CheckExport(const Validator& v, const JobConfig& c) {
  if (!c.has_export_()) return absl::OkStatus();
  const ExportConfig& e = c.export_();
  if (e.dir().empty()) {
    return v.Error("export.dir",
                   "is required when an export section is "
                   "present");
  }
  if (!c.has_checkpoint()) {
    return v.Error("export",
                   "exports follow checkpoints: add a checkpoint "
                   "section (with every_steps or every_minutes)");
  }
  if (!(e.every_minutes() >= 0 && e.every_minutes() <= 525600)) {
    return v.Error(
        "export.every_minutes",
        absl::StrCat("must be in [0, 525600], got ", e.every_minutes()));
  }
  if (std::isnan(e.min_score())) {
    return v.Error("export.min_score", "must be a number");
  }
  return absl::OkStatus();
}

// durability: a log folder (its own or the checkpoint's) with `wal`, and an
// fdatasync period.
absl::Status CheckDurability(const Validator& v, const JobConfig& c) {
  if (!c.has_durability()) return absl::OkStatus();
  const DurabilityConfig& d = c.durability();
  RETURN_IF_ERROR(v.Range("durability.wal_sync_ms", d.wal_sync_ms(), 0, 60000));
  if (d.wal() && d.wal_dir().empty() && c.checkpoint().dir().empty()) {
    return v.Error("durability.wal",
                   "needs durability.wal_dir or checkpoint.dir for the log "
                   "(and checkpoints to start it afresh)");
  }
  return absl::OkStatus();
}

// cluster: servers, sizes, timeouts and a consistent security section.
absl::Status CheckCluster(const Validator& v, const JobConfig& c) {
  const ClusterConfig& cl = c.cluster();
  if (cl.servers().empty()) {
    return v.Error("cluster.servers",
                   "no servers given (set cluster.servers in the file, "
                   "--servers, or PS_SERVERS)");
  }
  for (int i = 0; i < cl.servers_size(); ++i) {
    RETURN_IF_ERROR(CheckEndpoint(v, absl::StrCat("cluster.servers[", i, "]"),
                                  cl.servers(i)));
  }
  RETURN_IF_ERROR(v.Range("cluster.num_workers", cl.num_workers(), 1, 100000));
  RETURN_IF_ERROR(v.Range("cluster.shard_num", cl.shard_num(), 1, 4096));
  RETURN_IF_ERROR(v.Range<int64_t>("cluster.max_message_bytes",
                                   cl.max_message_bytes(), 1 << 20,
                                   (int64_t{1} << 31) - 1));
  RETURN_IF_ERROR(
      v.Range("cluster.rpc_timeout_ms", cl.rpc_timeout_ms(), 1, 86400000));
  RETURN_IF_ERROR(v.Range("cluster.connect_timeout_sec",
                          cl.connect_timeout_sec(), 1, 86400));
  RETURN_IF_ERROR(
      v.Range("cluster.dense_block_size", cl.dense_block_size(), 1, 1 << 26));
  RETURN_IF_ERROR(
      v.Range("cluster.heartbeat_ms", cl.heartbeat_ms(), 1, 3600 * 1000));
  RETURN_IF_ERROR(v.Range("cluster.worker_timeout_ms", cl.worker_timeout_ms(),
                          1, 86400 * 1000));
  // A heartbeat may come up to one period late (a busy worker, a slow
  // network) without its worker being dead: the timeout must span more than
  // two periods, or live workers are declared dead and fenced.
  if (cl.worker_timeout_ms() <= 2 * cl.heartbeat_ms()) {
    return v.Error("cluster.worker_timeout_ms",
                   absl::StrCat("must be more than 2 * cluster.heartbeat_ms (",
                                cl.heartbeat_ms(),
                                " ms), or live workers are declared dead; "
                                "got ",
                                cl.worker_timeout_ms()));
  }
  RETURN_IF_ERROR(
      v.Range("cluster.server_retry_sec", cl.server_retry_sec(), 1, 7 * 86400));
  const SecurityConfig& sec = cl.security();
  if (sec.tls_cert_file().empty() != sec.tls_key_file().empty()) {
    return v.Error(sec.tls_cert_file().empty()
                       ? "cluster.security.tls_cert_file"
                       : "cluster.security.tls_key_file",
                   "is required with the other (TLS needs both the "
                   "certificate and its key)");
  }
  if (!sec.tls_cert_file().empty() && sec.tls_ca_file().empty()) {
    return v.Error("cluster.security.tls_ca_file",
                   "is required with TLS (clients check the servers' "
                   "certificates against it)");
  }
  const LimitsConfig& lim = cl.limits();
  // A worker sends up to 8192 keys per chunk (worker/client/key_chunks.h)
  // and a push gathers a batch's chunks for one server.
  RETURN_IF_ERROR(v.Range<int64_t>("cluster.limits.max_keys_per_request",
                                   lim.max_keys_per_request(), 8192,
                                   int64_t{1} << 32));
  RETURN_IF_ERROR(v.Range<int64_t>("cluster.limits.max_step_jump",
                                   lim.max_step_jump(), 1, kMaxCheckpointStep));
  RETURN_IF_ERROR(v.Range("cluster.limits.max_concurrent_streams",
                          lim.max_concurrent_streams(), 1, 1 << 20));
  RETURN_IF_ERROR(v.Range<int64_t>("cluster.limits.rpc_memory_bytes",
                                   lim.rpc_memory_bytes(), 0,
                                   int64_t{1} << 50));
  RETURN_IF_ERROR(v.Range("cluster.limits.max_checkpoint_requests",
                          lim.max_checkpoint_requests(), 1, 64));
  return absl::OkStatus();
}

// sparse_tables[t]: a unique name, a dim, an optimizer, an initializer, a
// storage budget and an accessor that make sense.
absl::Status CheckSparseTable(const Validator& v, const JobConfig& c, int t) {
  const SparseTableConfig& table = c.sparse_tables(t);
  std::string path = absl::StrCat("sparse_tables[", t, "]");
  if (table.name().empty()) return v.Error(path + ".name", "is required");
  for (int u = 0; u < t; ++u) {
    if (c.sparse_tables(u).name() == table.name()) {
      return v.Error(
          path + ".name",
          absl::StrCat("'", table.name(),
                       "' is already the name of sparse_tables[", u, "]"));
    }
  }
  if (!table.has_dim()) return v.Error(path + ".dim", "is required");
  RETURN_IF_ERROR(v.Range(path + ".dim", table.dim(), 1, 4096));
  RETURN_IF_ERROR(CheckOptimizer(v, path + ".optimizer", table.optimizer()));
  const InitializerConfig& init = table.initializer();
  if (init.type() == InitializerConfig::TYPE_UNSPECIFIED) {
    return v.Error(path + ".initializer.type",
                   "must be ZEROS, UNIFORM or NORMAL");
  }
  if (!std::isfinite(init.scale()) || init.scale() < 0) {
    return v.Error(path + ".initializer.scale",
                   absl::StrCat("must be >= 0, got ", init.scale()));
  }
  const SparseStorageConfig& storage = table.storage();
  if (storage.max_rows() < 0 ||
      (storage.max_rows() > 0 &&
       storage.type() != SparseStorageConfig::MEMORY)) {
    return v.Error(path + ".storage.max_rows",
                   absl::StrCat("must be >= 0 and is for MEMORY tables only "
                                "(a TIERED table's memory_budget_bytes bounds "
                                "its memory), got ",
                                storage.max_rows()));
  }
  if (storage.has_memory_budget_bytes() && storage.memory_budget_bytes() < 0) {
    return v.Error(
        path + ".storage.memory_budget_bytes",
        absl::StrCat("must be >= 0, got ", storage.memory_budget_bytes()));
  }
  if (table.has_accessor()) {
    RETURN_IF_ERROR(CheckAccessor(v, path + ".accessor", table.accessor()));
  }
  return absl::OkStatus();
}

// sparse_tables: at least one, each valid.
absl::Status CheckSparseTables(const Validator& v, const JobConfig& c) {
  if (c.sparse_tables().empty()) {
    return v.Error("sparse_tables", "at least one sparse table is required");
  }
  for (int t = 0; t < c.sparse_tables_size(); ++t) {
    RETURN_IF_ERROR(CheckSparseTable(v, c, t));
  }
  return absl::OkStatus();
}

// model: a type, a sparse table of the dim the type needs, and the options
// that apply to that type only.
absl::Status CheckModel(const Validator& v, const JobConfig& c) {
  if (!c.has_model()) return v.Error("model", "is required");
  const ModelConfig& m = c.model();
  if (m.type() == ModelConfig::TYPE_UNSPECIFIED) {
    return v.Error("model.type",
                   "must be LR, DNN, FM, FWFM, WIDE_DEEP, DEEPFM or DCN");
  }
  const std::string& model_type = ModelConfig::Type_Name(m.type());
  // The tables the model names: `sparse_table` (unless every slot is
  // mapped elsewhere, checked with the data's shape) and slot_tables'.
  std::vector<std::string> names;
  for (const auto& t : c.sparse_tables()) names.push_back(t.name());
  auto find_table = [&c](const std::string& name) -> const SparseTableConfig* {
    for (const auto& t : c.sparse_tables()) {
      if (t.name() == name) return &t;
    }
    return nullptr;
  };
  std::vector<std::pair<std::string, const SparseTableConfig*>> used;
  if (m.sparse_table().empty()) {
    if (m.slot_tables().empty()) {
      return v.Error("model.sparse_table", "is required");
    }
  } else {
    const SparseTableConfig* table = find_table(m.sparse_table());
    if (table == nullptr) {
      return v.Error(
          "model.sparse_table",
          absl::StrCat("no sparse table named '", m.sparse_table(),
                       "' (tables: ", absl::StrJoin(names, ", "), ")"));
    }
    used.emplace_back("model.type", table);
  }
  for (int g = 0; g < m.slot_tables_size(); ++g) {
    const SlotTableConfig& group = m.slot_tables(g);
    const std::string path = absl::StrCat("model.slot_tables[", g, "]");
    if (group.table().empty()) {
      return v.Error(path + ".table", "is required");
    }
    const SparseTableConfig* table = find_table(group.table());
    if (table == nullptr) {
      return v.Error(
          path + ".table",
          absl::StrCat("no sparse table named '", group.table(),
                       "' (tables: ", absl::StrJoin(names, ", "), ")"));
    }
    if (group.slots().empty()) {
      return v.Error(path + ".slots", absl::StrCat("lists no slot for table '",
                                                   group.table(), "'"));
    }
    used.emplace_back(path + ".table", table);
  }
  for (const auto& [field, table] : used) {
    if (m.type() == ModelConfig::LR && table->dim() != 1) {
      return v.Error(field,
                     absl::StrCat("LR needs sparse table '", table->name(),
                                  "' to have dim 1, it has ", table->dim()));
    }
    // FM, FWFM, WIDE_DEEP and DEEPFM rows are [linear weight | embedding].
    if ((m.type() == ModelConfig::FM || m.type() == ModelConfig::FWFM ||
         m.type() == ModelConfig::WIDE_DEEP ||
         m.type() == ModelConfig::DEEPFM) &&
        table->dim() < 2) {
      return v.Error(
          field,
          absl::StrCat(model_type, " needs sparse table '", table->name(),
                       "' to have dim >= 2 (1 linear weight + "
                       "embedding), it has ",
                       table->dim()));
    }
    // The pairwise term dots every two slots' embeddings.
    if ((m.type() == ModelConfig::FM || m.type() == ModelConfig::FWFM ||
         m.type() == ModelConfig::DEEPFM) &&
        table->dim() != used[0].second->dim()) {
      return v.Error(
          field,
          absl::StrCat(model_type,
                       " needs one embedding width for all its "
                       "slots: sparse table '",
                       table->name(), "' has dim ", table->dim(), ", '",
                       used[0].second->name(), "' (", used[0].first,
                       ") has dim ", used[0].second->dim(),
                       " (use tables of one dim, or a DNN, WIDE_DEEP or DCN "
                       "model for mixed dims)"));
    }
  }
  if (m.type() == ModelConfig::LR && !m.hidden_units().empty()) {
    return v.Error("model.hidden_units", "must be empty for LR");
  }
  if ((m.type() == ModelConfig::FM || m.type() == ModelConfig::FWFM) &&
      !m.hidden_units().empty()) {
    return v.Error("model.hidden_units",
                   absl::StrCat("must be empty for ", model_type));
  }
  if (m.has_field_weight_init() && m.type() != ModelConfig::FWFM) {
    return v.Error("model.field_weight_init",
                   absl::StrCat("only applies to model type FWFM, this model "
                                "is ",
                                model_type));
  }
  RETURN_IF_ERROR(
      v.Range("model.field_weight_init", m.field_weight_init(), -10.0f, 10.0f));
  if (m.type() != ModelConfig::WIDE_DEEP) {
    if (!m.wide_slots().empty()) {
      return v.Error("model.wide_slots",
                     absl::StrCat("only applies to model type WIDE_DEEP, "
                                  "this model is ",
                                  model_type));
    }
    if (!m.deep_slots().empty()) {
      return v.Error("model.deep_slots",
                     absl::StrCat("only applies to model type WIDE_DEEP, "
                                  "this model is ",
                                  model_type));
    }
  }
  if (m.has_cross_layers() && m.type() != ModelConfig::DCN) {
    return v.Error("model.cross_layers",
                   absl::StrCat("only applies to model type DCN, this model "
                                "is ",
                                model_type));
  }
  RETURN_IF_ERROR(v.Range("model.cross_layers", m.cross_layers(), 0, 64));
  for (int i = 0; i < m.hidden_units_size(); ++i) {
    RETURN_IF_ERROR(v.Range(absl::StrCat("model.hidden_units[", i, "]"),
                            m.hidden_units(i), 1, 65536));
  }
  if (m.pooling() == ModelConfig::POOLING_UNSPECIFIED) {
    return v.Error("model.pooling", "must be SUM, MEAN or SQRTN");
  }
  if (m.activation() == ModelConfig::ACTIVATION_UNSPECIFIED) {
    return v.Error("model.activation", "must be RELU, TANH or SIGMOID");
  }
  if (!(m.dropout() >= 0 && m.dropout() < 1)) {
    return v.Error("model.dropout",
                   absl::StrCat("must be in [0, 1), got ", m.dropout()));
  }
  if (m.dropout() > 0 && m.hidden_units().empty()) {
    return v.Error("model.dropout",
                   absl::StrCat("applies to hidden layers (hidden_units), "
                                "this ",
                                model_type, " model has none"));
  }
  RETURN_IF_ERROR(
      CheckOptimizer(v, "model.dense_optimizer", m.dense_optimizer()));
  if (m.dense_optimizer().l2_by_frequency()) {
    return v.Error("model.dense_optimizer.l2_by_frequency",
                   "applies to sparse tables only (dense weights have no "
                   "keys to count)");
  }
  return absl::OkStatus();
}

// data.generate: where the generated data goes and its shape.
absl::Status CheckGenerator(const Validator& v, const GeneratorConfig& g) {
  if (g.output_dir().empty()) {
    return v.Error("data.generate.output_dir",
                   "is required (or pass --data_dir)");
  }
  RETURN_IF_ERROR(v.Range<int64_t>("data.generate.train_rows", g.train_rows(),
                                   1, int64_t{1} << 40));
  RETURN_IF_ERROR(v.Range<int64_t>("data.generate.eval_rows", g.eval_rows(), 1,
                                   int64_t{1} << 40));
  RETURN_IF_ERROR(
      v.Range("data.generate.vocab_size", g.vocab_size(), 1, 1 << 30));
  RETURN_IF_ERROR(
      v.Range("data.generate.zipf_exponent", g.zipf_exponent(), 0.0, 10.0));
  RETURN_IF_ERROR(
      v.Range("data.generate.weight_stddev", g.weight_stddev(), 0.0, 10.0));
  RETURN_IF_ERROR(
      v.Range("data.generate.num_interactions", g.num_interactions(), 0, 325));
  RETURN_IF_ERROR(v.Range("data.generate.bias", g.bias(), -20.0, 20.0));
  return absl::OkStatus();
}

// data: the bounds on input lines and gzip files.
absl::Status CheckInputLimits(const Validator& v, const DataConfig& d) {
  RETURN_IF_ERROR(v.Range<int64_t>("data.max_line_bytes", d.max_line_bytes(),
                                   64, int64_t{1} << 30));
  RETURN_IF_ERROR(v.Range<int64_t>("data.gzip_max_decompressed_bytes",
                                   d.gzip_max_decompressed_bytes(), 0,
                                   std::numeric_limits<int64_t>::max()));
  RETURN_IF_ERROR(
      v.Range("data.gzip_max_ratio", d.gzip_max_ratio(), 0, 1000000));
  if (d.format() != DataConfig::SLOT) {
    if (d.has_max_features_per_line()) {
      return v.Error("data.max_features_per_line",
                     "only applies to format SLOT");
    }
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(v.Range("data.max_features_per_line",
                          d.max_features_per_line(), 1, 1 << 20));
  // A batch's keys have 32-bit offsets (worker/data/batch.h).
  constexpr int64_t kMaxBatchKeys = (int64_t{1} << 32) - 1;
  if (int64_t{d.batch_size()} * d.max_features_per_line() > kMaxBatchKeys) {
    return v.Error(
        "data.max_features_per_line",
        absl::StrCat("times data.batch_size (", d.batch_size(),
                     ") must be at most ", kMaxBatchKeys,
                     ", the keys a batch holds (32-bit offsets); got ",
                     d.max_features_per_line()));
  }
  return absl::OkStatus();
}

// data: a format, its options, training (and eval) files or a generator,
// the reader's sizes; then the model's slot lists against the data's slots.
absl::Status CheckData(const Validator& v, const JobConfig& c) {
  if (!c.has_data()) return v.Error("data", "is required");
  const DataConfig& d = c.data();
  if (d.format() == DataConfig::FORMAT_UNSPECIFIED) {
    return v.Error("data.format", "must be CRITEO, SLOT, MOVIELENS or AVAZU");
  }
  if (d.int_features() == DataConfig::INT_FEATURES_UNSPECIFIED) {
    return v.Error("data.int_features", "must be LOG_BUCKET or NORMALIZE");
  }
  if (d.format() == DataConfig::SLOT) {
    if (!d.has_num_slots()) {
      return v.Error("data.num_slots", "is required for format SLOT");
    }
    RETURN_IF_ERROR(v.Range("data.num_slots", d.num_slots(), 1, 100000));
    RETURN_IF_ERROR(v.Range("data.num_dense", d.num_dense(), 0, 100000));
  } else if (d.has_num_slots()) {
    return v.Error("data.num_slots", "only applies to format SLOT");
  } else if (d.has_num_dense()) {
    return v.Error("data.num_dense", "only applies to format SLOT");
  }
  if (d.format() != DataConfig::MOVIELENS) {
    if (d.has_movielens_user_file()) {
      return v.Error("data.movielens_user_file",
                     "only applies to format MOVIELENS");
    }
    if (d.has_movielens_item_file()) {
      return v.Error("data.movielens_item_file",
                     "only applies to format MOVIELENS");
    }
  } else {
    if (d.has_movielens_user_file() && d.movielens_user_file().empty()) {
      return v.Error("data.movielens_user_file", "must not be empty");
    }
    if (d.has_movielens_item_file() && d.movielens_item_file().empty()) {
      return v.Error("data.movielens_item_file", "must not be empty");
    }
  }
  RETURN_IF_ERROR(
      v.Range("data.shuffle_buffer", d.shuffle_buffer(), 0, 10000000));
  RETURN_IF_ERROR(v.Range("data.eval_holdout_fraction",
                          d.eval_holdout_fraction(), 0.0, 0.5));
  if (d.eval_holdout_fold() != 0) {
    if (d.eval_holdout_fraction() == 0) {
      return v.Error("data.eval_holdout_fold",
                     "needs data.eval_holdout_fraction");
    }
    const int folds =
        static_cast<int>(std::floor(1 / d.eval_holdout_fraction() + 1e-9));
    RETURN_IF_ERROR(
        v.Range("data.eval_holdout_fold", d.eval_holdout_fold(), 0, folds - 1));
  }
  if (d.eval_holdout_fraction() > 0 &&
      (!d.eval_files().empty() || d.has_generate())) {
    return v.Error("data.eval_holdout_fraction",
                   "holds out train_files lines for evaluation, so it cannot "
                   "be combined with data.eval_files or data.generate");
  }
  if (d.has_generate() && d.format() != DataConfig::CRITEO) {
    return v.Error("data.generate",
                   "generates CRITEO data, so data.format must be CRITEO");
  }
  if (d.has_generate()) {
    if (!d.train_files().empty() || !d.eval_files().empty()) {
      return v.Error("data.generate",
                     "cannot be combined with data.train_files or "
                     "data.eval_files (generated data names its own files)");
    }
    RETURN_IF_ERROR(CheckGenerator(v, d.generate()));
  } else if (d.train_files().empty()) {
    return v.Error("data.train_files",
                   "at least one training file is required (or set "
                   "data.generate)");
  }
  for (const auto* files : {&d.train_files(), &d.eval_files()}) {
    for (const std::string& f : *files) {
      if (f.empty()) {
        return v.Error(
            files == &d.train_files() ? "data.train_files" : "data.eval_files",
            "an entry is empty");
      }
      if (IsPipePath(f) && !HasPipeCommand(f)) {
        return v.Error(
            files == &d.train_files() ? "data.train_files" : "data.eval_files",
            absl::StrCat("'", f,
                         "' has no command after 'pipe:' (write "
                         "pipe:COMMAND, e.g. pipe:zcat a.gz)"));
      }
    }
  }
  if (d.follow()) {
    if (d.has_generate()) {
      return v.Error("data.follow", "cannot follow generated data");
    }
    if (d.shuffle_buffer() > 0) {
      return v.Error("data.follow",
                     "reads files as they arrive and cannot shuffle "
                     "(data.shuffle_buffer must be 0)");
    }
    for (const std::string& f : d.train_files()) {
      if (IsPipePath(f)) {
        return v.Error("data.follow",
                       absl::StrCat("follows files, not commands ('", f,
                                    "' in data.train_files)"));
      }
    }
  } else if (d.has_follow_done_file()) {
    return v.Error("data.follow_done_file", "only applies with data.follow");
  }
  RETURN_IF_ERROR(
      v.Range("data.follow_poll_ms", d.follow_poll_ms(), 10, 3600000));
  RETURN_IF_ERROR(v.Range("data.batch_size", d.batch_size(), 1, 1000000));
  RETURN_IF_ERROR(v.Range("data.reader_threads", d.reader_threads(), 1, 64));
  RETURN_IF_ERROR(
      v.Range("data.max_bad_line_ratio", d.max_bad_line_ratio(), 0.0, 1.0));
  RETURN_IF_ERROR(CheckInputLimits(v, d));
  return CheckModelSlots(v, c);  // needs the data's shape
}

// training: a mode and its sizes; a calibration slot the data has.
absl::Status CheckTraining(const Validator& v, const JobConfig& c) {
  const TrainingConfig& tr = c.training();
  if (tr.mode() == TrainingConfig::MODE_UNSPECIFIED) {
    return v.Error("training.mode", "must be ASYNC, SYNC, BOUNDED or GEO");
  }
  RETURN_IF_ERROR(v.Range("training.epochs", tr.epochs(), 1, 100000));
  if (c.data().follow() && tr.epochs() != 1) {
    return v.Error("training.epochs",
                   absl::StrCat("must be 1 with data.follow (files are read "
                                "once, as they arrive), got ",
                                tr.epochs()));
  }
  RETURN_IF_ERROR(v.Range("training.early_stopping_patience",
                          tr.early_stopping_patience(), 0, 1000));
  RETURN_IF_ERROR(v.Range("training.early_stopping_min_delta",
                          tr.early_stopping_min_delta(), 0.0, 1e9));
  if (tr.early_stopping_patience() > 0) {
    if (!tr.eval_every_epoch()) {
      return v.Error("training.early_stopping_patience",
                     "needs training.eval_every_epoch");
    }
    if (c.data().eval_files().empty() &&
        c.data().eval_holdout_fraction() == 0 && !c.data().has_generate()) {
      return v.Error("training.early_stopping_patience",
                     "needs an evaluation: data.eval_files or "
                     "data.eval_holdout_fraction");
    }
  }
  RETURN_IF_ERROR(
      v.Range("training.log_every_steps", tr.log_every_steps(), 1, 1 << 30));
  RETURN_IF_ERROR(
      v.Range("training.pull_dense_every", tr.pull_dense_every(), 1, 1 << 30));
  RETURN_IF_ERROR(
      v.Range("training.prefetch_batches", tr.prefetch_batches(), 1, 16));
  RETURN_IF_ERROR(
      v.Range("training.max_inflight_pushes", tr.max_inflight_pushes(), 1, 64));
  RETURN_IF_ERROR(v.Range<int64_t>("training.max_steps", tr.max_steps(), 0,
                                   int64_t{1} << 50));
  RETURN_IF_ERROR(v.Range("training.staleness", tr.staleness(), 0, 1 << 20));
  RETURN_IF_ERROR(v.Range("training.geo_every", tr.geo_every(), 1, 1 << 20));
  RETURN_IF_ERROR(
      v.Range("training.max_merged_steps", tr.max_merged_steps(), 0, 1024));
  if (tr.calibration_slot() >= 0) {
    const int slots = InputShapeOf(c.data()).num_slots;
    if (tr.calibration_slot() >= slots) {
      return v.Error("training.calibration_slot",
                     absl::StrCat("must be -1 or a slot in [0, ", slots - 1,
                                  "], got ", tr.calibration_slot()));
    }
  }
  return absl::OkStatus();
}

absl::Status Validate(const Validator& v, const JobConfig& c) {
  RETURN_IF_ERROR(CheckCluster(v, c));
  RETURN_IF_ERROR(CheckSparseTables(v, c));
  RETURN_IF_ERROR(CheckModel(v, c));
  RETURN_IF_ERROR(CheckData(v, c));
  RETURN_IF_ERROR(CheckTraining(v, c));
  RETURN_IF_ERROR(CheckCheckpoint(v, c));
  RETURN_IF_ERROR(CheckDurability(v, c));
  RETURN_IF_ERROR(CheckExport(v, c));
  // Last: sizes derived from the whole (valid) config.
  if (std::optional<ConfigLimitError> over = CheckConfigLimits(c)) {
    return v.Error(over->field, over->reason);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateJobConfig(const JobConfig& config,
                               absl::string_view filename,
                               const TextFormat::ParseInfoTree* tree) {
  Locator locator(filename, tree);
  Validator validator(locator);
  return Validate(validator, config);
}

}  // namespace ps
