#include "spsc.h"
