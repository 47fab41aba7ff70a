#include "common/config.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/config_validate.h"
#include "common/pipe_path.h"
#include "common/status_macros.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace ps {

namespace {

using google::protobuf::TextFormat;

// Collects the parser's first error with its position.
class FirstErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (!has_error_) {
      has_error_ = true;
      line_ = line;
      column_ = column;
      message_ = message;
    }
  }
  void AddWarning(int, google::protobuf::io::ColumnNumber,
                  const std::string&) override {}

  bool has_error_ = false;
  int line_ = 0;
  int column_ = 0;
  std::string message_;
};

std::string Resolve(absl::string_view base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  // An input command (worker/data/pipe_reader.h) runs in the worker's
  // working directory, as written.
  if (IsPipePath(path)) return path;
  return absl::StrCat(base_dir, "/", path);
}

}  // namespace

std::vector<std::string> SplitEndpoints(absl::string_view list) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(list, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (!part.empty()) out.emplace_back(part);
  }
  return out;
}

std::string GeneratedTrainFile(const GeneratorConfig& gen) {
  return gen.output_dir() + "/train.tsv";
}
std::string GeneratedEvalFile(const GeneratorConfig& gen) {
  return gen.output_dir() + "/eval.tsv";
}
std::string GeneratedOracleFile(const GeneratorConfig& gen) {
  return gen.output_dir() + "/oracle.json";
}

absl::StatusOr<JobConfig> ParseJobConfig(absl::string_view text,
                                         absl::string_view filename,
                                         absl::string_view base_dir,
                                         const ConfigOverrides& overrides) {
  JobConfig config;
  TextFormat::Parser parser;
  FirstErrorCollector errors;
  TextFormat::ParseInfoTree tree;
  parser.RecordErrorsTo(&errors);
  parser.WriteLocationsTo(&tree);
  if (!parser.ParseFromString(std::string(text), &config)) {
    if (!errors.has_error_) {
      return absl::InvalidArgumentError(
          absl::StrCat(filename, ": not a valid JobConfig"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat(filename, ":", errors.line_ + 1, ":", errors.column_ + 1,
                     ": ", errors.message_));
  }

  if (!overrides.servers.empty()) {
    config.mutable_cluster()->clear_servers();
    for (const auto& s : overrides.servers) {
      config.mutable_cluster()->add_servers(s);
    }
  }
  if (overrides.num_workers > 0) {
    config.mutable_cluster()->set_num_workers(overrides.num_workers);
  }
  if (!overrides.data_dir.empty() && config.data().has_generate()) {
    config.mutable_data()->mutable_generate()->set_output_dir(
        overrides.data_dir);
  }

  RETURN_IF_ERROR(ValidateJobConfig(config, filename, &tree));

  if (!overrides.metrics_dir.empty()) {
    config.mutable_training()->set_metrics_dir(overrides.metrics_dir);
  } else if (config.training().has_metrics_dir()) {
    config.mutable_training()->set_metrics_dir(
        Resolve(base_dir, config.training().metrics_dir()));
  }
  for (SparseTableConfig& table : *config.mutable_sparse_tables()) {
    if (table.storage().has_dir()) {
      table.mutable_storage()->set_dir(
          Resolve(base_dir, table.storage().dir()));
    }
  }
  if (config.has_checkpoint()) {
    config.mutable_checkpoint()->set_dir(
        Resolve(base_dir, config.checkpoint().dir()));
  }
  if (config.export_().has_dir()) {
    config.mutable_export_()->set_dir(
        Resolve(base_dir, config.export_().dir()));
  }
  if (config.durability().has_wal_dir()) {
    config.mutable_durability()->set_wal_dir(
        Resolve(base_dir, config.durability().wal_dir()));
  }
  DataConfig* data = config.mutable_data();
  if (config.cluster().has_security()) {
    SecurityConfig* security = config.mutable_cluster()->mutable_security();
    for (std::string* f :
         {security->mutable_tls_cert_file(), security->mutable_tls_key_file(),
          security->mutable_tls_ca_file(), security->mutable_auth_token_file(),
          security->mutable_admin_token_file()}) {
      if (!f->empty()) *f = Resolve(base_dir, *f);
    }
  }
  for (auto& f : *data->mutable_train_files()) f = Resolve(base_dir, f);
  for (auto& f : *data->mutable_eval_files()) f = Resolve(base_dir, f);
  if (data->has_follow_done_file()) {
    data->set_follow_done_file(Resolve(base_dir, data->follow_done_file()));
  }
  if (data->has_movielens_user_file()) {
    data->set_movielens_user_file(
        Resolve(base_dir, data->movielens_user_file()));
  }
  if (data->has_movielens_item_file()) {
    data->set_movielens_item_file(
        Resolve(base_dir, data->movielens_item_file()));
  }
  if (data->has_generate()) {
    GeneratorConfig* gen = data->mutable_generate();
    if (overrides.data_dir.empty()) {
      gen->set_output_dir(Resolve(base_dir, gen->output_dir()));
    }
    data->add_train_files(GeneratedTrainFile(*gen));
    data->add_eval_files(GeneratedEvalFile(*gen));
  }
  return config;
}

absl::StatusOr<JobConfig> LoadJobConfig(const std::string& path,
                                        const ConfigOverrides& overrides) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read config file '", path, "'"));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  size_t slash = path.rfind('/');
  std::string base_dir =
      slash == std::string::npos ? "" : path.substr(0, slash);
  return ParseJobConfig(buffer.str(), path, base_dir, overrides);
}

}  // namespace ps
