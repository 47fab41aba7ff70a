// A server's Stats answer as text: the Prometheus exposition its /metrics
// serves, the one line it logs, and the table and JSON that ps_ctl prints
// (tools/ctl/admin_client.h). Pure functions of the proto: thread-safe, no
// RPC, so the server links no operator-tool code.
#ifndef PS_SERVER_SERVICE_STATS_FORMAT_H_
#define PS_SERVER_SERVICE_STATS_FORMAT_H_

#include <string>
#include <vector>

#include "proto/ps.pb.h"

namespace ps {

// The answer of one server.
struct ServerStats {
  std::string endpoint;
  StatsResponse stats;
};

// A server's stats in the Prometheus text format (for its /metrics):
// ps_sparse_<field>{server,table} for every numeric field of
// SparseTableStats (hits, misses, evictions, write_backs, admitted,
// dropped_pushes, shrunk as counters named ..._total; the others gauges),
// ps_dense_floats_held{server,table} and
// ps_pushes_total{server,worker,kind}.
std::string FormatStatsPrometheus(const StatsResponse& stats);

// A readable multi-line table per server.
std::string FormatStatsTable(const std::vector<ServerStats>& servers);
// A JSON array with one object {"endpoint": ..., "stats": {...}} per server
// (the proto's JSON mapping, every field printed).
std::string FormatStatsJson(const std::vector<ServerStats>& servers);
// One line, e.g. "server 0: emb rows=5 (mem 5, disk 0) mem=1.2KiB hit=..,
// miss=.. evict=.. wb=..; dense model 66 floats; pushes sparse=3 dense=3".
std::string FormatStatsLine(const StatsResponse& stats);

}  // namespace ps

#endif  // PS_SERVER_SERVICE_STATS_FORMAT_H_
