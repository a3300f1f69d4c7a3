from services.identity.service import build
from services.runtime.server import main

if __name__ == "__main__":
    main("identity", build)
