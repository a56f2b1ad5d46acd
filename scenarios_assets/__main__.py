from scenarios_assets.cli.main import main

raise SystemExit(main())
