#include "common/rpc_security.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/client_interceptor.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/channel_args.h"
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

// Equal strings, in time independent of where they differ.
bool SameSecret(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

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
  if (!config.auth_token_file().empty()) {
    std::ifstream in(config.auth_token_file());
    if (!in) {
      return absl::InvalidArgumentError(
          absl::StrCat("cluster.security.auth_token_file: cannot read '",
                       config.auth_token_file(), "'"));
    }
    std::string line;
    std::getline(in, line);
    s->token_ = std::string(absl::StripAsciiWhitespace(line));
    auto status =
        CheckToken(s->token_, absl::StrCat("cluster.security.auth_token_file '",
                                           config.auth_token_file(), "'"));
    if (!status.ok()) return status;
  } else if (const char* env = std::getenv("PS_AUTH_TOKEN"); env != nullptr) {
    s->token_ = std::string(absl::StripAsciiWhitespace(env));
    auto status = CheckToken(s->token_, "PS_AUTH_TOKEN");
    if (!status.ok()) return status;
  }
  if (!s->token_.empty()) s->header_ = absl::StrCat(kBearer, s->token_);
  return std::shared_ptr<const RpcSecurity>(std::move(s));
}

std::shared_ptr<const RpcSecurity> RpcSecurity::None() {
  static const auto* none =
      new std::shared_ptr<const RpcSecurity>(new RpcSecurity());
  return *none;
}

std::string RpcSecurity::Describe() const {
  return absl::StrCat(tls_ ? "TLS" : "plaintext",
                      has_token() ? ", auth token required" : ", no token");
}

std::shared_ptr<grpc::ServerCredentials> RpcSecurity::ServerCredentials()
    const {
  if (!tls_) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options;
  options.pem_root_certs = ca_pem_;
  options.pem_key_cert_pairs.push_back({key_pem_, cert_pem_});
  return grpc::SslServerCredentials(options);
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
  if (!has_token()) {
    return grpc::CreateCustomChannel(endpoint, credentials, args);
  }
  std::vector<
      std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(std::make_unique<TokenInterceptorFactory>(header_));
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      endpoint, credentials, args, std::move(interceptors));
}

grpc::Status RpcSecurity::Check(const grpc::ServerContextBase& context) const {
  if (!has_token()) return grpc::Status::OK;
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
  if (!SameSecret(got, header_)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        absl::StrCat("call from ", context.peer(),
                                     " carries a wrong auth token"));
  }
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* RpcSecurity::Refuse(
    grpc::CallbackServerContext* context) const {
  grpc::Status status = Check(*context);
  if (status.ok()) return nullptr;
  LOG_EVERY_N(WARNING, 100) << "refused call: " << status.error_message();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

}  // namespace ps
