// Security of a job's RPCs (ClusterConfig.security, proto/config.proto):
//  - TLS: servers listen with their certificate and key; clients connect
//    with TLS and check the servers' certificates against the CA file;
//  - an auth token: clients attach it to every call (metadata
//    "authorization: Bearer <token>", added by a channel interceptor), and
//    servers refuse a call without it, or with another one, as
//    UNAUTHENTICATED (RpcSecurity::Check, first thing in every handler).
//  - an operator token (admin_token_file, PS_ADMIN_TOKEN): when set, the
//    administrative calls (Shutdown, SaveCheckpoint, Reload, Shrink,
//    RequestCheckpoint) need it; servers and ps_ctl (kServer, kAdmin) send
//    it instead of the auth token, workers (kClient) never load it. It passes
//    the auth token's check too.
// With TLS and a token, calls without a valid token are refused by an
// AuthMetadataProcessor before gRPC reads their message; in plaintext, by
// Check in the handler (the message is read first, up to the message limit
// and within the server's resource quota).
// Without a security section: plaintext and no token, which a server
// accepts only on a loopback address unless started with --insecure
// (CheckExposure).
//
// Loaded once per process; immutable afterwards, so one object serves every
// channel and handler thread.
#ifndef PS_COMMON_RPC_SECURITY_H_
#define PS_COMMON_RPC_SECURITY_H_

#include <grpcpp/channel.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/channel_arguments.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "proto/config.pb.h"

namespace ps {

class RpcSecurity {
 public:
  enum class Role {
    kServer,  // listens (needs the certificate and key) and calls peers
    kClient,  // only calls (needs the CA file); never has the admin token
    kAdmin,   // an operator's tool (ps_ctl): a client with the admin token
  };

  // Reads what `role` needs of `config`: the certificate, key and CA files
  // (server) or the CA file (client) when TLS is on, and the token (from
  // auth_token_file, or else the environment variable PS_AUTH_TOKEN).
  // InvalidArgument naming the field and the file when a file is missing,
  // unreadable or empty, or the token is blank or has characters a gRPC
  // header cannot carry (it must be printable ASCII). Never puts the token
  // in a message.
  static absl::StatusOr<std::shared_ptr<const RpcSecurity>> Load(
      const SecurityConfig& config, Role role);
  // Plaintext, no token.
  static std::shared_ptr<const RpcSecurity> None();

  bool has_token() const { return !token_.empty(); }
  bool has_admin_token() const { return !admin_token_.empty(); }
  bool tls() const { return tls_; }

  // Whether a server may listen on `listen_address` ("host:port") with
  // these settings: on a loopback address always; elsewhere only with TLS
  // and a token, unless `insecure`. FailedPrecondition saying how to set up
  // TLS and a token otherwise.
  absl::Status CheckExposure(const std::string& listen_address,
                             bool insecure) const;
  // Whether `endpoint`'s host is a loopback address (localhost, 127.x,
  // [::1]).
  static bool IsLoopback(const std::string& endpoint);
  // "TLS and token", "plaintext, no token", ... (for logs).
  std::string Describe() const;

  // Credentials for a server's listening port. REQUIRES: loaded as kServer
  // when TLS is on.
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials() const;
  // A channel to `endpoint` ("host:port"), with TLS when it is on, sending
  // the token with every call when there is one, and with keepalive
  // (SetClientKeepalive with the default KeepaliveOptions,
  // common/channel_args.h). REQUIRES: `args` sets no keepalive argument.
  std::shared_ptr<grpc::Channel> Channel(
      const std::string& endpoint,
      const grpc::ChannelArguments& args = grpc::ChannelArguments()) const;
  // A server's check of one incoming call: OK when no token is required or
  // the call carries it; else UNAUTHENTICATED saying whether the token was
  // missing or wrong, and from which peer.
  grpc::Status Check(const grpc::ServerContextBase& context) const;
  // Check for an administrative call: with an admin token, only that token
  // passes (PERMISSION_DENIED for the job's auth token).
  grpc::Status CheckAdmin(const grpc::ServerContextBase& context) const;
  // For the first line of a callback handler: null when Check passes, else
  // the call's reactor, finished with Check's status (and logged).
  grpc::ServerUnaryReactor* Refuse(grpc::CallbackServerContext* context) const;
  // Refuse with CheckAdmin.
  grpc::ServerUnaryReactor* RefuseAdmin(
      grpc::CallbackServerContext* context) const;

 private:
  RpcSecurity() = default;

  bool tls_ = false;
  std::string cert_pem_;
  std::string key_pem_;
  std::string ca_pem_;
  std::string token_;
  std::string header_;  // "Bearer <token>"
  std::string admin_token_;
  std::string admin_header_;  // "Bearer <admin token>"
};

}  // namespace ps

#endif  // PS_COMMON_RPC_SECURITY_H_
