from scenarios_assets.cli import main

raise SystemExit(main())
