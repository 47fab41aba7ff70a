// Security of the job's RPCs (common/rpc_security.h, cluster.security): on
// real servers on loopback,
//  - with an auth token, every method of PsService and Coordinator refuses
//    a call without it, or with another one, as UNAUTHENTICATED, naming the
//    problem but never the token; the health service answers without it;
//  - with TLS, clients that trust the job's CA work, a plaintext client and
//    one trusting another CA do not get through;
//  - a whole job (2 servers, 2 workers) trains with TLS and a token;
//  - bad security settings are refused with the field and the file named.
// The TLS material is test-only (tests/data/tls/README.md).
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/rpc_security.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "proto/health.grpc.pb.h"
#include "proto/ps.grpc.pb.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/server_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tools/ctl/admin_client.h"
#include "tools/datagen/datagen.h"
#include "worker/client/ps_client.h"

namespace ps {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using testing_util::StatusIs;
using testing_util::TempDir;

constexpr char kToken[] = "s3cret-token-for-tests";

std::string TlsFile(const std::string& name) {
  return absl::StrCat(PS_TEST_SOURCE_DIR, "/tests/data/tls/", name);
}

class SecurityTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& content) {
    return temp_dir_.Write(name, content);
  }

  SecurityConfig Token(const std::string& token) {
    SecurityConfig s;
    s.set_auth_token_file(Write("token_" + std::to_string(files_++), token));
    return s;
  }

  static SecurityConfig Tls(const std::string& ca = "ca.pem") {
    SecurityConfig s;
    s.set_tls_cert_file(TlsFile("server.pem"));
    s.set_tls_key_file(TlsFile("server.key"));
    s.set_tls_ca_file(TlsFile(ca));
    return s;
  }

  static std::shared_ptr<const RpcSecurity> Client(const SecurityConfig& s) {
    auto loaded = RpcSecurity::Load(s, RpcSecurity::Role::kClient);
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    return loaded.ok() ? *loaded : RpcSecurity::None();
  }

  static std::unique_ptr<PsServer> Server(const SecurityConfig& security) {
    JobConfig config = SmallJobConfig(1, 1, 2, 8);
    *config.mutable_cluster()->mutable_security() = security;
    return StartServer(config, 0);
  }

  static AdminOptions Admin(const PsServer& server,
                            std::shared_ptr<const RpcSecurity> security,
                            const std::string& host = "127.0.0.1") {
    AdminOptions o;
    o.servers = {absl::StrCat(host, ":", server.port())};
    o.rpc_timeout = absl::Seconds(5);
    o.security = std::move(security);
    return o;
  }

  TempDir temp_dir_;
  const std::string dir_ = temp_dir_.path();
  int files_ = 0;
};

// Calls `method` ("/ps.PsService/Stats") with an empty request.
grpc::Status CallRaw(const std::shared_ptr<grpc::Channel>& channel,
                     const std::string& method) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
  grpc::Slice empty("", 0);  // zero bytes: a valid encoding of every message
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  return done.get_future().get();
}

TEST_F(SecurityTest, EveryMethodRefusesACallWithoutTheToken) {
  auto server = Server(Token(kToken));
  ASSERT_NE(server, nullptr);
  const std::string endpoint = Endpoint(*server);
  const auto none = RpcSecurity::None()->Channel(endpoint);
  const auto wrong = Client(Token("another-token"))->Channel(endpoint);
  int methods = 0;
  for (const char* name : {"ps.PsService", "ps.Coordinator"}) {
    const google::protobuf::ServiceDescriptor* service =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
            name);
    ASSERT_NE(service, nullptr) << name;
    for (int m = 0; m < service->method_count(); ++m) {
      const std::string method =
          absl::StrCat("/", name, "/", service->method(m)->name());
      grpc::Status status = CallRaw(none, method);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << method << ": " << status.error_message();
      EXPECT_THAT(status.error_message(), HasSubstr("no auth token")) << method;
      status = CallRaw(wrong, method);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << method;
      EXPECT_THAT(status.error_message(), HasSubstr("wrong auth token"));
      EXPECT_THAT(status.error_message(), Not(HasSubstr(kToken)));
      EXPECT_THAT(status.error_message(), Not(HasSubstr("another-token")));
      ++methods;
    }
  }
  // PsService: Pull, Push, Shutdown, Stats, Shrink, SaveCheckpoint, Reload;
  // Coordinator: 9.
  EXPECT_EQ(methods, 16);
  // Still serving, and the right token gets through.
  std::ostringstream out, err;
  EXPECT_EQ(
      RunCtlCommand(Admin(*server, Client(Token(kToken))), "stats", out, err),
      0)
      << err.str();
  EXPECT_THAT(out.str(), HasSubstr("emb"));
}

TEST_F(SecurityTest, ClientsWithTheTokenWorkAndOthersAreToldWhy) {
  auto server = Server(Token(kToken));
  ASSERT_NE(server, nullptr);
  JobConfig config = SmallJobConfig(1, 1, 2, 8);
  config.mutable_cluster()->set_servers(0, Endpoint(*server));
  config.mutable_cluster()->set_connect_timeout_sec(5);
  config.mutable_cluster()->set_server_retry_sec(0);
  PsClientOptions options = PsClientOptions::FromConfig(config, 0);
  options.security = Token(std::string("  ") + kToken + " \nsecond line\n");
  auto client = PsClient::Connect(options);
  ASSERT_TRUE(client.ok()) << client.status();
  std::vector<float> values(2 * 3, -1.0f);
  absl::Status pulled = (*client)->PullSparse(
      0, 2, std::vector<uint64_t>{1, 2, 3}, absl::MakeSpan(values), 0);
  ASSERT_TRUE(pulled.ok()) << pulled;
  EXPECT_EQ(values, std::vector<float>(6, 0.0f));  // zero-initialized rows

  options.security = SecurityConfig();  // no token
  auto plain = PsClient::Connect(options);
  ASSERT_TRUE(plain.ok()) << plain.status();
  pulled = (*plain)->PullSparse(0, 2, std::vector<uint64_t>{1},
                                absl::MakeSpan(values).subspan(0, 2), 0);
  EXPECT_THAT(pulled, StatusIs(absl::StatusCode::kUnauthenticated,
                               AllOf(HasSubstr("no auth token"),
                                     HasSubstr("server 0"))));
}

TEST_F(SecurityTest, HealthAnswersWithoutTokenAndGoesNotServingAtShutdown) {
  auto server = Server(Token(kToken));
  ASSERT_NE(server, nullptr);
  const AdminOptions admin = Admin(*server, RpcSecurity::None());
  auto health = CheckHealth(admin, 0);
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, "SERVING");
  std::ostringstream out, err;
  EXPECT_EQ(RunCtlCommand(admin, "health", out, err), 0) << err.str();
  EXPECT_THAT(out.str(), HasSubstr("SERVING"));
  server->Shutdown();
  out.str("");
  err.str("");
  EXPECT_EQ(RunCtlCommand(admin, "health", out, err), 1);
  EXPECT_THAT(err.str(), HasSubstr("server 0 (127.0.0.1:"));
}

TEST_F(SecurityTest, TlsLetsInOnlyClientsThatTrustTheJobsCa) {
  auto server = Server(Tls());
  ASSERT_NE(server, nullptr);
  SecurityConfig trusting;
  trusting.set_tls_ca_file(TlsFile("ca.pem"));
  // The certificate names 127.0.0.1 and localhost.
  for (const std::string host : {"127.0.0.1", "localhost"}) {
    auto health = CheckHealth(Admin(*server, Client(trusting), host), 0);
    ASSERT_TRUE(health.ok()) << host << ": " << health.status();
    EXPECT_EQ(*health, "SERVING");
    auto stats = CollectStats(Admin(*server, Client(trusting), host));
    EXPECT_TRUE(stats.ok()) << host << ": " << stats.status();
  }
  auto plain = CollectStats(Admin(*server, RpcSecurity::None()));
  EXPECT_FALSE(plain.ok());
  EXPECT_THAT(plain, StatusIs(absl::StatusCode::kUnavailable));
  SecurityConfig other;
  other.set_tls_ca_file(TlsFile("other_ca.pem"));
  auto untrusted = CollectStats(Admin(*server, Client(other)));
  EXPECT_FALSE(untrusted.ok());
  EXPECT_THAT(untrusted, StatusIs(absl::StatusCode::kUnavailable));
}

constexpr char kJob[] = R"pb(
cluster { servers: "127.0.0.1:1" servers: "127.0.0.1:2" num_workers: 2 }
sparse_tables {
  name: "embedding"
  dim: 4
  optimizer { type: ADAGRAD learning_rate: 0.05 }
}
model {
  type: DNN
  sparse_table: "embedding"
  hidden_units: 8
  dense_optimizer { type: ADAGRAD learning_rate: 0.01 }
}
data {
  batch_size: 256
  generate {
    output_dir: "unused"
    seed: 5
    train_rows: 20000
    eval_rows: 2000
    vocab_size: 50
    num_interactions: 0
  }
}
training { log_every_steps: 50 }
)pb";

// Workers, the coordinator and the servers' calls to each other (the
// checkpoint writes, the final Shutdown) all go through TLS with the token.
TEST_F(SecurityTest, AJobTrainsWithTlsAndAToken) {
  ConfigOverrides overrides;
  overrides.data_dir = dir_ + "/data";
  auto config = ParseJobConfig(kJob, "security_test", "", overrides);
  ASSERT_TRUE(config.ok()) << config.status();
  SecurityConfig security = Tls();
  security.set_auth_token_file(Token(kToken).auth_token_file());
  *config->mutable_cluster()->mutable_security() = security;
  config->mutable_checkpoint()->set_dir(dir_ + "/ckpt");
  config->mutable_checkpoint()->set_every_steps(20);
  auto report = GenerateCriteoData(config->data().generate());
  ASSERT_TRUE(report.ok()) << report.status();
  auto cluster = RunLocalCluster(*config);
  ASSERT_EQ(cluster->results.size(), 2u);
  int64_t examples = 0;
  for (const auto& r : cluster->results) {
    ASSERT_TRUE(r.ok()) << r.status();
    examples += r->train.examples;
  }
  EXPECT_EQ(examples, report->train_rows);
  EXPECT_TRUE(cluster->servers_stopped);  // the coordinator's Shutdown calls
  ASSERT_TRUE(cluster->results[0]->eval.has_value());
  EXPECT_GT(cluster->results[0]->eval->auc, 0.6);
  std::ifstream latest(dir_ + "/ckpt/LATEST");
  EXPECT_TRUE(latest.good()) << "no checkpoint was completed";
}

TEST_F(SecurityTest, BadSettingsNameTheFieldAndTheFile) {
  SecurityConfig missing_ca = Tls();
  missing_ca.set_tls_ca_file(dir_ + "/no_such_ca.pem");
  auto loaded = RpcSecurity::Load(missing_ca, RpcSecurity::Role::kClient);
  EXPECT_THAT(loaded, StatusIs(absl::StatusCode::kInvalidArgument,
                               AllOf(HasSubstr("tls_ca_file"),
                                     HasSubstr("no_such_ca.pem"))));

  SecurityConfig empty_key = Tls();
  empty_key.set_tls_key_file(Write("empty.key", ""));
  loaded = RpcSecurity::Load(empty_key, RpcSecurity::Role::kServer);
  EXPECT_THAT(loaded.status().message(), HasSubstr("tls_key_file"));
  EXPECT_THAT(loaded.status().message(), HasSubstr("is empty"));
  // A client does not read the server's key.
  EXPECT_TRUE(RpcSecurity::Load(empty_key, RpcSecurity::Role::kClient).ok());

  loaded = RpcSecurity::Load(Token("   \n"), RpcSecurity::Role::kClient);
  EXPECT_THAT(loaded.status().message(), HasSubstr("blank"));
  loaded = RpcSecurity::Load(Token("tab\tinside"), RpcSecurity::Role::kClient);
  EXPECT_THAT(loaded.status().message(), HasSubstr("printable ASCII"));
  EXPECT_THAT(loaded.status().message(), Not(HasSubstr("inside")));

  // A server with a broken setting does not start, and says why.
  JobConfig config = SmallJobConfig(1, 1, 2, 8);
  *config.mutable_cluster()->mutable_security() = missing_ca;
  PsServerOptions options;
  options.config = config;
  options.listen_address = "127.0.0.1:0";
  auto server = PsServer::Start(options);
  EXPECT_THAT(server, StatusIs(absl::StatusCode::kInvalidArgument));

  // Config validation: TLS needs both halves and a CA.
  auto with_security = [](const std::string& security) {
    std::string job = kJob;
    const std::string cluster_end = "num_workers: 2 }";
    job.replace(job.find(cluster_end), cluster_end.size(),
                "num_workers: 2 security { " + security + " } }");
    return ParseJobConfig(job, "bad.pbtxt", "", ConfigOverrides());
  };
  auto parsed = with_security("tls_cert_file: \"a.pem\"");
  EXPECT_THAT(parsed.status().message(),
              HasSubstr("cluster.security.tls_key_file"));
  parsed = with_security("tls_cert_file: \"a.pem\" tls_key_file: \"a.key\"");
  EXPECT_THAT(parsed.status().message(),
              HasSubstr("cluster.security.tls_ca_file"));
}

TEST_F(SecurityTest, TheTokenCanComeFromTheEnvironment) {
  ASSERT_EQ(setenv("PS_AUTH_TOKEN", kToken, 1), 0);
  auto from_env =
      RpcSecurity::Load(SecurityConfig(), RpcSecurity::Role::kServer);
  unsetenv("PS_AUTH_TOKEN");
  ASSERT_TRUE(from_env.ok()) << from_env.status();
  EXPECT_TRUE((*from_env)->has_token());
  // The file, when named, wins over the environment.
  ASSERT_EQ(setenv("PS_AUTH_TOKEN", "ignored", 1), 0);
  auto from_file = RpcSecurity::Load(Token(kToken), RpcSecurity::Role::kClient);
  unsetenv("PS_AUTH_TOKEN");
  ASSERT_TRUE(from_file.ok());
  auto server = Server(Token(kToken));
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(CollectStats(Admin(*server, *from_env)).ok());
  EXPECT_TRUE(CollectStats(Admin(*server, *from_file)).ok());
  EXPECT_FALSE(RpcSecurity::None()->has_token());
}

// A server beyond loopback needs TLS and a token, or --insecure.
TEST_F(SecurityTest, BeyondLoopbackAServerNeedsTlsAndATokenOrInsecure) {
  auto start = [](const SecurityConfig& security, bool insecure) {
    JobConfig config = SmallJobConfig(1, 1, 2, 8);
    *config.mutable_cluster()->mutable_security() = security;
    PsServerOptions options;
    options.config = config;
    options.listen_address = "0.0.0.0:0";
    options.insecure = insecure;
    return PsServer::Start(options);
  };
  auto plain = start(SecurityConfig(), false);
  EXPECT_THAT(plain, StatusIs(absl::StatusCode::kFailedPrecondition,
                              AllOf(HasSubstr("refusing to listen on 0.0.0.0"),
                                    HasSubstr("tls_cert_file"),
                                    HasSubstr("auth_token_file"),
                                    HasSubstr("--insecure"))));
  auto token_only = start(Token(kToken), false);
  EXPECT_THAT(token_only, StatusIs(absl::StatusCode::kFailedPrecondition,
                                   HasSubstr("cleartext")));
  auto tls_only = start(Tls(), false);
  EXPECT_THAT(tls_only, StatusIs(absl::StatusCode::kFailedPrecondition));
  SecurityConfig both = Tls();
  both.set_auth_token_file(Token(kToken).auth_token_file());
  auto secure = start(both, false);
  EXPECT_TRUE(secure.ok()) << secure.status();
  auto insecure = start(SecurityConfig(), true);
  EXPECT_TRUE(insecure.ok()) << insecure.status();
  // Loopback needs nothing.
  EXPECT_NE(Server(SecurityConfig()), nullptr);
  EXPECT_TRUE(RpcSecurity::IsLoopback("localhost:5000"));
  EXPECT_TRUE(RpcSecurity::IsLoopback("127.0.0.2:5000"));
  EXPECT_TRUE(RpcSecurity::IsLoopback("[::1]:5000"));
  EXPECT_FALSE(RpcSecurity::IsLoopback("10.0.0.1:5000"));
  EXPECT_FALSE(RpcSecurity::IsLoopback("0.0.0.0:5000"));
  EXPECT_FALSE(RpcSecurity::IsLoopback("ps-server-0.ps-server:5000"));
}

// With an operator token, stop, checkpoint and shrink need it; the job's
// token still serves data and stats; workers never load it.
TEST_F(SecurityTest, AdministrativeCallsNeedTheOperatorToken) {
  SecurityConfig security = Token(kToken);
  security.set_admin_token_file(Write("admin", "operator-secret\n"));
  JobConfig config = SmallJobConfig(1, 1, 2, 8);
  *config.mutable_cluster()->mutable_security() = security;
  config.mutable_checkpoint()->set_dir(dir_ + "/ckpt");
  auto server = StartServer(config, 0);
  ASSERT_NE(server, nullptr);

  auto worker = RpcSecurity::Load(security, RpcSecurity::Role::kClient);
  ASSERT_TRUE(worker.ok()) << worker.status();
  EXPECT_FALSE((*worker)->has_admin_token());
  for (const char* command : {"stop", "shrink", "checkpoint"}) {
    std::ostringstream out, err;
    EXPECT_NE(RunCtlCommand(Admin(*server, *worker), command, out, err), 0)
        << command;
    EXPECT_THAT(err.str(), HasSubstr("operator token")) << command;
    EXPECT_THAT(err.str(), Not(HasSubstr("operator-secret")));
  }
  std::ostringstream out, err;
  EXPECT_EQ(RunCtlCommand(Admin(*server, *worker), "stats", out, err), 0)
      << err.str();
  EXPECT_FALSE(server->WaitForShutdownRequest(absl::ZeroDuration()));

  auto admin = RpcSecurity::Load(security, RpcSecurity::Role::kAdmin);
  ASSERT_TRUE(admin.ok()) << admin.status();
  EXPECT_TRUE((*admin)->has_admin_token());
  out.str("");
  err.str("");
  EXPECT_EQ(RunCtlCommand(Admin(*server, *admin), "shrink", out, err), 0)
      << err.str();
  EXPECT_EQ(RunCtlCommand(Admin(*server, *admin), "stop", out, err), 0)
      << err.str();
  EXPECT_TRUE(server->WaitForShutdownRequest(absl::Seconds(10)));
}

// With TLS, a call without the token is refused by gRPC before its message
// is read (the auth metadata processor), and probes still get through.
TEST_F(SecurityTest, WithTlsCallsWithoutTheTokenAreRefusedBeforeTheirMessage) {
  SecurityConfig security = Tls();
  security.set_auth_token_file(Token(kToken).auth_token_file());
  auto server = Server(security);
  ASSERT_NE(server, nullptr);
  SecurityConfig trusting;
  trusting.set_tls_ca_file(TlsFile("ca.pem"));
  const auto no_token = Client(trusting)->Channel(Endpoint(*server));
  grpc::Status status = CallRaw(no_token, "/ps.PsService/Stats");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(),
              HasSubstr("refused before its message was read"));
  SecurityConfig wrong = trusting;
  wrong.set_auth_token_file(Token("not-the-token").auth_token_file());
  status =
      CallRaw(Client(wrong)->Channel(Endpoint(*server)), "/ps.PsService/Push");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("wrong auth token"));
  auto health = CheckHealth(Admin(*server, Client(trusting)), 0);
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, "SERVING");
  SecurityConfig right = trusting;
  right.set_auth_token_file(security.auth_token_file());
  EXPECT_TRUE(CollectStats(Admin(*server, Client(right))).ok());
}

}  // namespace
}  // namespace ps
