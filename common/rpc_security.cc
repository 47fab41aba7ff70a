#include "common/rpc_security.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/client_interceptor.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/channel_args.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace ps {

namespace {

constexpr char kAuthHeader[] = "authorization";
constexpr char kBearer[] = "Bearer ";

// The whole of `path`, for the field that names it. InvalidArgument when it
// cannot be read or is empty.
absl::StatusOr<std::string> ReadPem(absl::string_view field,
                                    const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster.security.", field, ": cannot read '", path, "'"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster.security.", field, ": '", path, "' is empty"));
  }
  return text.str();
}

// A token a gRPC header value can carry: printable ASCII, not blank.
absl::Status CheckToken(const std::string& token, absl::string_view from) {
  if (token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the auth token from ", from, " is blank"));
  }
  for (char c : token) {
    if (c < 0x20 || c > 0x7e) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the auth token from ", from,
          " has a character a gRPC header cannot carry (use printable "
          "ASCII)"));
    }
  }
  return absl::OkStatus();
}

// Equal strings, in time that depends only on the longer one's length:
// neither where they differ nor whether the lengths match shows.
bool SameSecret(absl::string_view a, absl::string_view b) {
  const size_t n = std::max(a.size(), b.size());
  volatile unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? a[i] : 0;
    const unsigned char y = i < b.size() ? b[i] : 0;
    diff = diff | static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

// Reads a token from `file` (first line, trimmed), else from environment
// variable `env` when set; "" when neither. `field` names the config field.
absl::StatusOr<std::string> ReadToken(const std::string& file,
                                      absl::string_view field,
                                      const char* env) {
  std::string token;
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cluster.security.", field, ": cannot read '", file, "'"));
    }
    std::string line;
    std::getline(in, line);
    token = std::string(absl::StripAsciiWhitespace(line));
    RETURN_IF_ERROR(CheckToken(
        token, absl::StrCat("cluster.security.", field, " '", file, "'")));
  } else if (const char* value = std::getenv(env); value != nullptr) {
    token = std::string(absl::StripAsciiWhitespace(value));
    RETURN_IF_ERROR(CheckToken(token, env));
  }
  return token;
}

// The token check of a TLS server, run by gRPC on a call's metadata before
// the call is dispatched or its message read: calls without one of the
// job's tokens end UNAUTHENTICATED there. The health service passes (probes
// carry no token); so does every call when `header` is empty. Handlers
// check again (RpcSecurity::Check), which also tells admin calls apart.
class TokenProcessor : public grpc::AuthMetadataProcessor {
 public:
  TokenProcessor(std::string header, std::string admin_header)
      : header_(std::move(header)), admin_header_(std::move(admin_header)) {}
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& metadata, grpc::AuthContext*,
                       OutputMetadata*, OutputMetadata*) override {
    auto path = metadata.find(":path");
    if (path != metadata.end() &&
        absl::StartsWith(
            absl::string_view(path->second.data(), path->second.size()),
            "/grpc.health.v1.Health/")) {
      return grpc::Status::OK;
    }
    auto it = metadata.find(kAuthHeader);
    if (it == metadata.end()) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "call carries no auth token (refused before its "
                          "message was read: this job's servers require "
                          "cluster.security's token)");
    }
    const absl::string_view got(it->second.data(), it->second.size());
    if (SameSecret(got, header_) ||
        (!admin_header_.empty() && SameSecret(got, admin_header_))) {
      return grpc::Status::OK;
    }
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "call carries a wrong auth token (refused before "
                        "its message was read)");
  }

 private:
  const std::string header_;
  const std::string admin_header_;
};

// Adds the token header to every call of a channel.
class TokenInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit TokenInterceptor(const std::string& header) : header_(header) {}
  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::
                PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace(kAuthHeader, header_);
    }
    methods->Proceed();
  }

 private:
  const std::string header_;
};

class TokenInterceptorFactory
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit TokenInterceptorFactory(std::string header)
      : header_(std::move(header)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new TokenInterceptor(header_);
  }

 private:
  const std::string header_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<const RpcSecurity>> RpcSecurity::Load(
    const SecurityConfig& config, Role role) {
  std::shared_ptr<RpcSecurity> s(new RpcSecurity());
  s->tls_ = !config.tls_cert_file().empty() || !config.tls_ca_file().empty();
  if (s->tls_) {
    if (config.tls_ca_file().empty()) {
      return absl::InvalidArgumentError(
          "cluster.security.tls_ca_file is required with TLS");
    }
    auto ca = ReadPem("tls_ca_file", config.tls_ca_file());
    if (!ca.ok()) return ca.status();
    s->ca_pem_ = std::move(ca).value();
    if (role == Role::kServer) {
      if (config.tls_cert_file().empty() || config.tls_key_file().empty()) {
        return absl::InvalidArgumentError(
            "cluster.security.tls_cert_file and tls_key_file are required "
            "for a server with TLS");
      }
      auto cert = ReadPem("tls_cert_file", config.tls_cert_file());
      if (!cert.ok()) return cert.status();
      auto key = ReadPem("tls_key_file", config.tls_key_file());
      if (!key.ok()) return key.status();
      s->cert_pem_ = std::move(cert).value();
      s->key_pem_ = std::move(key).value();
    }
  }
  ASSIGN_OR_RETURN(s->token_, ReadToken(config.auth_token_file(),
                                        "auth_token_file", "PS_AUTH_TOKEN"));
  if (role != Role::kClient) {
    ASSIGN_OR_RETURN(s->admin_token_,
                     ReadToken(config.admin_token_file(), "admin_token_file",
                               "PS_ADMIN_TOKEN"));
  }
  if (!s->token_.empty()) s->header_ = absl::StrCat(kBearer, s->token_);
  if (!s->admin_token_.empty()) {
    s->admin_header_ = absl::StrCat(kBearer, s->admin_token_);
  }
  return std::shared_ptr<const RpcSecurity>(std::move(s));
}

std::shared_ptr<const RpcSecurity> RpcSecurity::None() {
  static const auto* none =
      new std::shared_ptr<const RpcSecurity>(new RpcSecurity());
  return *none;
}

std::string RpcSecurity::Describe() const {
  return absl::StrCat(tls_ ? "TLS" : "plaintext",
                      has_token() ? ", auth token required" : ", no token",
                      has_admin_token() ? ", admin token for admin calls" : "");
}

bool RpcSecurity::IsLoopback(const std::string& endpoint) {
  const size_t colon = endpoint.rfind(':');
  const std::string host =
      colon == std::string::npos ? endpoint : endpoint.substr(0, colon);
  return host == "localhost" || absl::StartsWith(host, "127.") ||
         host == "[::1]" || host == "::1" || absl::StartsWith(host, "unix:");
}

absl::Status RpcSecurity::CheckExposure(const std::string& listen_address,
                                        bool insecure) const {
  if (IsLoopback(listen_address) || insecure) {
    if (!IsLoopback(listen_address) && !(tls_ && has_token())) {
      LOG(WARNING) << "listening on " << listen_address << " with "
                   << Describe()
                   << " (--insecure): anyone who can reach this address can "
                      "call every method"
                   << (has_token() && !tls_
                           ? ", and the token crosses the network in "
                             "cleartext"
                           : "");
    }
    return absl::OkStatus();
  }
  if (tls_ && has_token()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "refusing to listen on ", listen_address,
      " (not a loopback address) "
      "with ",
      Describe(),
      ": anyone who can reach it could stop the job, "
      "overwrite its tables or write checkpoints",
      has_token() ? ", and the token would cross the network in cleartext" : "",
      ". Set cluster.security: tls_cert_file, tls_key_file and tls_ca_file "
      "(a certificate naming the servers' hosts), and auth_token_file (or "
      "PS_AUTH_TOKEN), optionally admin_token_file for the operator; see "
      "README.md, Security. To run without them on a trusted network, start "
      "the server with --insecure"));
}

std::shared_ptr<grpc::ServerCredentials> RpcSecurity::ServerCredentials()
    const {
  if (!tls_) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options;
  options.pem_root_certs = ca_pem_;
  options.pem_key_cert_pairs.push_back({key_pem_, cert_pem_});
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::SslServerCredentials(options);
  if (has_token()) {
    credentials->SetAuthMetadataProcessor(
        std::make_shared<TokenProcessor>(header_, admin_header_));
  }
  return credentials;
}

std::shared_ptr<grpc::Channel> RpcSecurity::Channel(
    const std::string& endpoint,
    const grpc::ChannelArguments& caller_args) const {
  grpc::ChannelArguments args = caller_args;
  SetClientKeepalive(KeepaliveOptions(), &args);
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (tls_) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = ca_pem_;
    credentials = grpc::SslCredentials(options);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  if (!has_token() && !has_admin_token()) {
    return grpc::CreateCustomChannel(endpoint, credentials, args);
  }
  if (!tls_ && !IsLoopback(endpoint)) {
    LOG_FIRST_N(WARNING, 1)
        << "sending the auth token to " << endpoint
        << " in cleartext (no TLS): anyone on the path can read it";
  }
  std::vector<
      std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(std::make_unique<TokenInterceptorFactory>(
      has_admin_token() ? admin_header_ : header_));
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      endpoint, credentials, args, std::move(interceptors));
}

grpc::Status RpcSecurity::Check(const grpc::ServerContextBase& context) const {
  if (!has_token())
    return grpc::Status::OK;  // an admin token alone guards
                              // only the admin calls
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(kAuthHeader);
  if (it == metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        absl::StrCat("call from ", context.peer(),
                                     " carries no auth token (this job's "
                                     "servers require cluster.security's "
                                     "token)"));
  }
  const absl::string_view got(it->second.data(), it->second.size());
  if (!SameSecret(got, header_) &&
      !(has_admin_token() && SameSecret(got, admin_header_))) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        absl::StrCat("call from ", context.peer(),
                                     " carries a wrong auth token"));
  }
  return grpc::Status::OK;
}

grpc::Status RpcSecurity::CheckAdmin(
    const grpc::ServerContextBase& context) const {
  if (!has_admin_token()) return Check(context);
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(kAuthHeader);
  if (it != metadata.end() &&
      SameSecret(absl::string_view(it->second.data(), it->second.size()),
                 admin_header_)) {
    return grpc::Status::OK;
  }
  grpc::Status status = Check(context);
  if (!status.ok()) return status;
  return grpc::Status(
      grpc::StatusCode::PERMISSION_DENIED,
      absl::StrCat("call from ", context.peer(),
                   " is administrative and needs the operator token "
                   "(cluster.security.admin_token_file or PS_ADMIN_TOKEN); "
                   "the job's auth token is not enough"));
}

namespace {

// Null when `status` is OK, else the call's reactor finished with it.
grpc::ServerUnaryReactor* FinishRefused(grpc::CallbackServerContext* context,
                                        const grpc::Status& status) {
  if (status.ok()) return nullptr;
  LOG_EVERY_N(WARNING, 100) << "refused call: " << status.error_message();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* RpcSecurity::RefuseAdmin(
    grpc::CallbackServerContext* context) const {
  return FinishRefused(context, CheckAdmin(*context));
}

grpc::ServerUnaryReactor* RpcSecurity::Refuse(
    grpc::CallbackServerContext* context) const {
  return FinishRefused(context, Check(*context));
}

}  // namespace ps
