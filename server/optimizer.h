// The optimizer rules moved to common/optimizer.h (the GEO worker applies
// them to its local copy too); this header stays for the server files that
// include it.
#ifndef PS_SERVER_OPTIMIZER_H_
#define PS_SERVER_OPTIMIZER_H_

#include "common/optimizer.h"

#endif  // PS_SERVER_OPTIMIZER_H_
